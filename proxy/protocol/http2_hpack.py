"""HPACK (RFC 7541) for the native HTTP/2 server codec: a stateless response encoder, and the
decoder of request header blocks.

How this works: the encoder never touches the dynamic table. A field equal to a static-table
entry (``:status 200``) is one byte; any other field is a literal without indexing, naming
the static-table entry when the name is there (``content-type``), else spelling the name out;
strings are never Huffman-coded. Responses cost a few byte appends per field, the encoder
has no state to keep in step with the peer's, and SETTINGS_HEADER_TABLE_SIZE only matters
in one case: a peer that lowers it below the default 4096 expects a dynamic table size
update at the start of the next block, which ``TABLE_SIZE_ZERO`` is (RFC 7541 §4.2).

`HpackDecoder` reads request header blocks: static and dynamic table (at most the default
4096 bytes, which our SETTINGS never change), the four field representations, and Huffman
strings through a table of 4-bit steps built at import from the code table the hpack package
ships (RFC 7541 Appendix B): every HPACK code is at least 5 bits long, so one step emits at
most one byte. Each field is checked against the header-list limit as soon as it is decoded,
so an HPACK bomb (one entry referenced thousands of times) stops at the limit. Errors raise
`HpackError` (COMPRESSION_ERROR) or its subclass `HeaderListTooLarge` (ENHANCE_YOUR_CALM).
"""

from __future__ import annotations

from typing import Final

from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH

# RFC 7541 Appendix A, index 1 first.
STATIC_TABLE: Final[tuple[tuple[bytes, bytes], ...]] = (
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
)

DEFAULT_TABLE_SIZE: Final = 4096
# A dynamic table size update to 0 (001 prefix, 5-bit integer): always within what the peer
# allows, and we never add to the table.
TABLE_SIZE_ZERO: Final = 0x20


def _int_bytes(value: int, prefix_bits: int, first: int) -> bytes:
    """An HPACK integer (RFC 7541 §5.1) whose first byte carries ``first`` above the prefix."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _build_tables() -> tuple[dict[bytes, dict[bytes, bytes]], dict[bytes, bytes]]:
    exact: dict[bytes, dict[bytes, bytes]] = {}
    names: dict[bytes, bytes] = {}
    for index, (name, value) in enumerate(STATIC_TABLE, 1):
        if value:
            exact.setdefault(name, {})[value] = _int_bytes(index, 7, 0x80)
        if name not in names:
            # Literal header field without indexing, indexed name (0000 prefix, 4 bits).
            names[name] = _int_bytes(index, 4, 0x00)
    return exact, names


# name -> value -> the one-byte indexed representation
_EXACT, _NAME_PREFIX = _build_tables()
_STATUS_NAME: Final = _NAME_PREFIX[b":status"]


def encode_field(out: bytearray, name: bytes, value: bytes) -> None:
    """Append one field: indexed when it is a static entry, else a literal without indexing."""
    values = _EXACT.get(name)
    if values is not None:
        indexed = values.get(value)
        if indexed is not None:
            out += indexed
            return
    prefix = _NAME_PREFIX.get(name)
    if prefix is not None:
        out += prefix
    else:
        out.append(0x00)  # literal without indexing, new name
        n = len(name)
        if n < 127:
            out.append(n)
        else:
            out += _int_bytes(n, 7, 0x00)
        out += name
    n = len(value)
    if n < 127:
        out.append(n)  # H bit 0: not Huffman-coded
    else:
        out += _int_bytes(n, 7, 0x00)
    out += value


def encode_status(out: bytearray, status: int) -> None:
    """``:status``: one byte for the seven static codes, else three ASCII digits."""
    if status == 200:
        out.append(0x88)
        return
    digits = b"%d" % status
    indexed = _EXACT[b":status"].get(digits)
    if indexed is not None:
        out += indexed
        return
    out += _STATUS_NAME
    out.append(len(digits))
    out += digits


# ---- decoding -------------------------------------------------------------------------------

_ENTRY_OVERHEAD: Final = 32  # RFC 7541 §4.1
_MAX_INTEGER: Final = 1 << 32  # no length, index or size in a request comes near it
_EOS: Final = 256


class HpackError(Exception):
    """The block cannot be decoded: a connection error COMPRESSION_ERROR."""


class HeaderListTooLarge(HpackError):
    """The decoded list passed the advertised SETTINGS_MAX_HEADER_LIST_SIZE."""


def _build_huffman() -> tuple[list[int], list[bool]]:
    """Decoding steps: ``steps[state << 4 | nibble]`` is -1 (invalid: EOS decoded) or
    ``next_state << 9 | (byte + 1)`` with 0 in the low bits when no byte was completed. A
    state is an inner node of the code tree, 0 the root. ``accepting[state]``: a string may
    end there (at the root, or within at most 7 padding bits that are all ones)."""
    children: list[list[int]] = [[-1, -1]]  # inner nodes; a leaf is stored as -(symbol + 2)
    for symbol in range(257):
        code = REQUEST_CODES[symbol]
        length = REQUEST_CODES_LENGTH[symbol]
        node = 0
        for shift in range(length - 1, 0, -1):
            bit = (code >> shift) & 1
            if children[node][bit] == -1:
                children[node][bit] = len(children)
                children.append([-1, -1])
            node = children[node][bit]
        children[node][code & 1] = -(symbol + 2)
    # Depth and all-ones-ness of each inner node, for the padding rule.
    depth = [0] * len(children)
    ones = [False] * len(children)
    ones[0] = True
    for node in range(len(children)):
        for bit in (0, 1):
            child = children[node][bit]
            if child >= 0:
                depth[child] = depth[node] + 1
                ones[child] = ones[node] and bit == 1
    accepting = [node == 0 or (ones[node] and depth[node] <= 7) for node in range(len(children))]
    steps: list[int] = []
    for state in range(len(children)):
        for nibble in range(16):
            node = state
            emitted = 0
            for shift in (3, 2, 1, 0):
                child = children[node][(nibble >> shift) & 1]
                if child < 0:
                    symbol = -child - 2
                    if symbol == _EOS:
                        emitted = -1
                        break
                    emitted = symbol + 1
                    node = 0
                else:
                    node = child
            steps.append(-1 if emitted < 0 else node << 9 | emitted)
    return steps, accepting


_HUFFMAN_STEPS, _HUFFMAN_ACCEPTING = _build_huffman()


def huffman_decode(data: bytes) -> bytes:
    steps = _HUFFMAN_STEPS
    out = bytearray()
    state = 0
    for byte in data:
        step = steps[state << 4 | byte >> 4]
        if step < 0:
            raise HpackError("EOS in a Huffman string")
        if step & 0x1FF:
            out.append((step & 0x1FF) - 1)
        state = step >> 9
        step = steps[state << 4 | (byte & 0x0F)]
        if step < 0:
            raise HpackError("EOS in a Huffman string")
        if step & 0x1FF:
            out.append((step & 0x1FF) - 1)
        state = step >> 9
    if not _HUFFMAN_ACCEPTING[state]:
        raise HpackError("invalid Huffman padding")
    return bytes(out)


class HpackDecoder:
    """The decoding context of one connection (its dynamic table)."""

    def __init__(self, max_header_list_size: int) -> None:
        self.max_header_list_size = max_header_list_size
        self.max_table_size = DEFAULT_TABLE_SIZE  # what our SETTINGS allow (the default)
        self._table_limit = DEFAULT_TABLE_SIZE  # the encoder's current choice
        self._table: list[tuple[bytes, bytes]] = []  # newest last
        self._table_size = 0

    @property
    def table_size(self) -> int:
        return self._table_size

    def decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        fields: list[tuple[bytes, bytes]] = []
        n = len(block)
        pos = 0
        list_size = 0
        limit = self.max_header_list_size
        while pos < n:
            first = block[pos]
            if first & 0x80:  # indexed field
                index, pos = _integer(block, pos, 7)
                field = self._get(index)
            elif first & 0x40:  # literal with incremental indexing
                index, pos = _integer(block, pos, 6)
                field, pos = self._literal(block, pos, index)
                self._add(field)
            elif first & 0x20:  # dynamic table size update
                if fields:
                    raise HpackError("table size update after a field")
                size, pos = _integer(block, pos, 5)
                if size > self.max_table_size:
                    raise HpackError("table size update above the allowed size")
                self._table_limit = size
                self._evict(size)
                continue
            else:  # literal without indexing / never indexed
                index, pos = _integer(block, pos, 4)
                field, pos = self._literal(block, pos, index)
            list_size += len(field[0]) + len(field[1]) + _ENTRY_OVERHEAD
            if list_size > limit:
                raise HeaderListTooLarge(f"header list above {limit} bytes")
            fields.append(field)
        return fields

    def _get(self, index: int) -> tuple[bytes, bytes]:
        if index <= 0:
            raise HpackError("index 0")
        if index <= len(STATIC_TABLE):
            return STATIC_TABLE[index - 1]
        at = len(self._table) - (index - len(STATIC_TABLE))
        if at < 0:
            raise HpackError(f"index {index} beyond the table")
        return self._table[at]

    def _literal(self, block: bytes, pos: int, index: int) -> tuple[tuple[bytes, bytes], int]:
        if index:
            name = self._get(index)[0]
        else:
            name, pos = _string(block, pos)
        value, pos = _string(block, pos)
        return (name, value), pos

    def _add(self, field: tuple[bytes, bytes]) -> None:
        size = len(field[0]) + len(field[1]) + _ENTRY_OVERHEAD
        if size > self._table_limit:
            # Larger than the whole table: it empties the table and is not added (§4.4).
            self._table.clear()
            self._table_size = 0
            return
        self._evict(self._table_limit - size)
        self._table.append(field)
        self._table_size += size

    def _evict(self, room: int) -> None:
        table = self._table
        while self._table_size > room:
            name, value = table.pop(0)
            self._table_size -= len(name) + len(value) + _ENTRY_OVERHEAD


def _integer(block: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
    """An HPACK integer starting at ``pos``: (value, position after it)."""
    mask = (1 << prefix_bits) - 1
    value = block[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    n = len(block)
    while True:
        if pos >= n:
            raise HpackError("truncated integer")
        byte = block[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if value > _MAX_INTEGER:
            raise HpackError("integer too large")
        if not byte & 0x80:
            return value, pos
        shift += 7


def _string(block: bytes, pos: int) -> tuple[bytes, int]:
    if pos >= len(block):
        raise HpackError("truncated string")
    huffman = block[pos] & 0x80
    length, pos = _integer(block, pos, 7)
    end = pos + length
    if end > len(block):
        raise HpackError("truncated string")
    raw = block[pos:end]
    return (huffman_decode(raw) if huffman else raw), end
