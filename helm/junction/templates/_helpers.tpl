{{/* Names and labels. */}}
{{- define "junction.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "junction.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "junction.selectorLabels" -}}
app.kubernetes.io/name: {{ include "junction.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The gateway's pods, apart from the Redis and agent pods of the same release. */}}
{{- define "junction.gatewaySelectorLabels" -}}
{{ include "junction.selectorLabels" . }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "junction.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "junction.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "junction.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "junction.secretName" -}}
{{- printf "%s-secrets" (include "junction.fullname" .) -}}
{{- end -}}

{{- define "junction.redisName" -}}
{{- printf "%s-redis" (include "junction.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Whether the chart's Secret exists: provider keys, or an external Redis URL to keep. */}}
{{- define "junction.hasSecret" -}}
{{- if or .Values.secrets (and .Values.externalRedis.url (not .Values.redis.enabled) (not .Values.externalRedis.existingSecret)) -}}true{{- end -}}
{{- end -}}

{{/* The grace period: the preStop pause, then Junction's own drain, then a margin. */}}
{{- define "junction.terminationGracePeriodSeconds" -}}
{{- add .Values.preStopSleepSeconds .Values.drainTimeoutSeconds .Values.terminationMarginSeconds -}}
{{- end -}}

{{/*
The Junction container. Used by the gateway Deployment, by the example agent Deployment of
sidecar mode, and printed by NOTES.txt for adding to a pod of your own.
*/}}
{{- define "junction.container" -}}
name: junction
image: {{ include "junction.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
args: ["serve", "--config", "/etc/junction/junction.yaml"]
env:
  # These keys follow the pod spec, so they are set here and win over junction.yaml.
  - name: JUNCTION_LISTEN__HOST
    value: {{ if eq .Values.mode "sidecar" }}{{ .Values.listen.sidecarHost | quote }}{{ else }}"0.0.0.0"{{ end }}
  - name: JUNCTION_LISTEN__PORT
    value: {{ .Values.listen.port | quote }}
  - name: JUNCTION_ADMIN__HOST
    value: "0.0.0.0"
  - name: JUNCTION_ADMIN__PORT
    value: {{ .Values.admin.port | quote }}
  - name: JUNCTION_SERVER__DRAIN_TIMEOUT_S
    value: {{ .Values.drainTimeoutSeconds | quote }}
  - name: JUNCTION_SERVER__WORKERS
    value: {{ .Values.workers | quote }}
  {{- if .Values.redis.enabled }}
  - name: JUNCTION_REDIS__URL
    value: {{ printf "redis://%s:6379/0" (include "junction.redisName" .) | quote }}
  {{- else if .Values.externalRedis.existingSecret }}
  - name: JUNCTION_REDIS__URL
    valueFrom:
      secretKeyRef:
        name: {{ .Values.externalRedis.existingSecret }}
        key: {{ .Values.externalRedis.existingSecretKey }}
  {{- end }}
  {{- with .Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- if or (include "junction.hasSecret" .) .Values.existingSecret }}
# The keys of the Secret(s) become environment variables, read by `${VAR}` in junction.yaml
# (an external Redis URL given in the values arrives as JUNCTION_REDIS__URL).
envFrom:
  {{- if include "junction.hasSecret" . }}
  - secretRef:
      name: {{ include "junction.secretName" . }}
  {{- end }}
  {{- if .Values.existingSecret }}
  - secretRef:
      name: {{ .Values.existingSecret }}
  {{- end }}
{{- end }}
ports:
  - name: http
    containerPort: {{ .Values.listen.port }}
    protocol: TCP
  - name: admin
    containerPort: {{ .Values.admin.port }}
    protocol: TCP
startupProbe:
  httpGet:
    path: /healthz
    port: admin
  periodSeconds: {{ .Values.probes.startup.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.startup.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.startup.failureThreshold }}
livenessProbe:
  httpGet:
    path: /healthz
    port: admin
  periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
readinessProbe:
  # 503 while Junction drains: the pod leaves the Service's endpoints at once.
  httpGet:
    path: /readyz
    port: admin
  periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
{{- if gt (int .Values.preStopSleepSeconds) 0 }}
lifecycle:
  preStop:
    exec:
      command: ["sleep", {{ .Values.preStopSleepSeconds | quote }}]
{{- end }}
resources:
  {{- toYaml .Values.resources | nindent 2 }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - name: junction-config
    mountPath: /etc/junction
    readOnly: true
  - name: junction-tmp
    mountPath: /tmp
{{- end -}}

{{/* The volumes the Junction container mounts. */}}
{{- define "junction.volumes" -}}
- name: junction-config
  configMap:
    name: {{ include "junction.fullname" . }}
- name: junction-tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end -}}

{{/* Pod-level settings shared by the gateway and the example agent Deployment. */}}
{{- define "junction.podSpecCommon" -}}
automountServiceAccountToken: false
terminationGracePeriodSeconds: {{ include "junction.terminationGracePeriodSeconds" . }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod template annotations: a config or secret change rolls the pods. */}}
{{- define "junction.podAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}
