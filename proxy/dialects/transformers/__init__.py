"""Provider transformers: small ordered rewriters of provider-dialect requests and responses."""
