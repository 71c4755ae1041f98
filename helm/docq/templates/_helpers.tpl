{{/*
Names and labels. Every object is "<fullname>-<component>" with the standard
app.kubernetes.io labels; selectors use name, instance and component only.
*/}}
{{- define "docq.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "docq.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "docq.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of a component: (dict "ctx" $ "component" "server"). */}}
{{- define "docq.selectorLabels" -}}
app.kubernetes.io/name: {{ include "docq.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "docq.labels" -}}
{{ include "docq.selectorLabels" . }}
helm.sh/chart: {{ include "docq.chart" .ctx }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: docq
{{- end -}}

{{- define "docq.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "docq.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "docq.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Whole seconds in a number of milliseconds, rounded up. */}}
{{- define "docq.ceilSeconds" -}}
{{- div (add (int64 .) 999) 1000 -}}
{{- end -}}

{{/*
Redis. The bundled Redis's password lives in a Secret (generated once, see
redis-secret.yaml); an external Redis's in a Secret of the operator's. Every pod
that needs it (servers, workers, the bundled Redis) mounts that Secret read-only
as the file docq.redis.passwordFile: docq reads it through
DOCQ_REDIS_PASSWORD_FILE, so the password is in no ConfigMap, no environment
variable and no URL.
*/}}
{{- define "docq.redis.host" -}}
{{- printf "%s-redis" (include "docq.fullname" .) -}}
{{- end -}}

{{- define "docq.redis.secretName" -}}
{{- if .Values.redis.bundled.enabled -}}
{{- default (printf "%s-redis" (include "docq.fullname" .)) .Values.redis.bundled.existingSecret -}}
{{- else -}}
{{- .Values.redis.external.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "docq.redis.secretKey" -}}
{{- if .Values.redis.bundled.enabled -}}
{{- if .Values.redis.bundled.existingSecret -}}{{ .Values.redis.bundled.existingSecretKey }}{{- else -}}redis-password{{- end -}}
{{- else -}}
{{- .Values.redis.external.existingSecretKey -}}
{{- end -}}
{{- end -}}

{{/*
DOCQ_REDIS_URL: redis://host:port[/db], never with a password; for a Redis Cluster given
by redis.external.seeds, the seeds as redis:// URLs joined with commas.
*/}}
{{- define "docq.redis.url" -}}
{{- $e := .Values.redis.external -}}
{{- if .Values.redis.bundled.enabled -}}
{{- printf "redis://%s:6379/%d" (include "docq.redis.host" .) (int64 .Values.redis.bundled.db) -}}
{{- else if $e.seeds -}}
{{- $urls := list -}}
{{- range $e.seeds -}}
{{- $urls = append $urls (ternary . (printf "redis://%s" .) (hasPrefix "redis://" .)) -}}
{{- end -}}
{{- join "," $urls -}}
{{- else -}}
{{- $e.url -}}
{{- end -}}
{{- end -}}

{{- define "docq.redis.passwordDir" -}}/etc/docq/redis{{- end -}}

{{/* DOCQ_REDIS_PASSWORD_FILE: the mounted password, or "" when Redis has none. */}}
{{- define "docq.redis.passwordFile" -}}
{{- if include "docq.redis.secretName" . -}}{{ include "docq.redis.passwordDir" . }}/password{{- end -}}
{{- end -}}

{{/* The password file's volume, as a YAML list (empty when Redis has no password). */}}
{{- define "docq.redis.volumes" -}}
{{- if include "docq.redis.secretName" . -}}
- name: redis-password
  secret:
    secretName: {{ include "docq.redis.secretName" . }}
    items:
      - key: {{ include "docq.redis.secretKey" . | quote }}
        path: password
{{- else -}}
[]
{{- end -}}
{{- end -}}

{{/* Its mount, as a YAML list. */}}
{{- define "docq.redis.volumeMounts" -}}
{{- if include "docq.redis.secretName" . -}}
- name: redis-password
  mountPath: {{ include "docq.redis.passwordDir" . }}
  readOnly: true
{{- else -}}
[]
{{- end -}}
{{- end -}}

{{/*
TLS on the server's gRPC port: the certificate and key of server.tls.existingSecret,
and with clientAuth the client CA, projected into one read-only directory.
*/}}
{{- define "docq.tls.dir" -}}/etc/docq/tls{{- end -}}

{{- define "docq.tls.volumes" -}}
{{- $t := .Values.server.tls -}}
{{- if $t.enabled -}}
- name: tls
  projected:
    sources:
      - secret:
          name: {{ $t.existingSecret }}
          items:
            - {key: tls.crt, path: tls.crt}
            - {key: tls.key, path: tls.key}
      {{- if $t.clientAuth }}
      - secret:
          name: {{ default $t.existingSecret $t.clientCA.existingSecret }}
          items:
            - key: {{ $t.clientCA.existingSecretKey | quote }}
              path: client-ca.crt
      {{- end }}
{{- else -}}
[]
{{- end -}}
{{- end -}}

{{- define "docq.tls.volumeMounts" -}}
{{- if .Values.server.tls.enabled -}}
- name: tls
  mountPath: {{ include "docq.tls.dir" . }}
  readOnly: true
{{- else -}}
[]
{{- end -}}
{{- end -}}

{{/* The port the server's gRPC probes target: with TLS on, the plaintext health port. */}}
{{- define "docq.server.probePort" -}}
{{- if .Values.server.tls.enabled -}}{{ .Values.server.healthPort }}{{- else -}}{{ .Values.server.port }}{{- end -}}
{{- end -}}

{{/* The API keys file's place in the server container. */}}
{{- define "docq.apiKeys.dir" -}}/etc/docq/api-keys{{- end -}}
{{- define "docq.apiKeys.secretName" -}}
{{- default (printf "%s-api-keys" (include "docq.fullname" .)) .Values.server.apiKeys.existingSecret -}}
{{- end -}}

{{/* topologySpreadConstraints of a component: (dict "ctx" $ "component" "server" "spread" .Values.server.topologySpread). */}}
{{- define "docq.topologySpread" -}}
{{- if .spread.enabled -}}
topologySpreadConstraints:
{{- range .spread.topologyKeys }}
  - maxSkew: {{ $.spread.maxSkew }}
    topologyKey: {{ . }}
    whenUnsatisfiable: {{ $.spread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "docq.selectorLabels" (dict "ctx" $.ctx "component" $.component) | nindent 8 }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod annotations for Prometheus's annotation-based discovery. */}}
{{- define "docq.metricsAnnotations" -}}
{{- if .ctx.Values.metrics.podAnnotations -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end -}}

{{/*
Checks the schema cannot express; they fail the install with a message.
*/}}
{{- define "docq.validate" -}}
{{- $e := .Values.redis.external -}}
{{- if and .Values.redis.bundled.enabled (or $e.cluster $e.seeds) -}}
{{- fail "redis.external.cluster or redis.external.seeds is set but redis.bundled.enabled is true: the bundled Redis is a single node, not a Redis Cluster; set redis.bundled.enabled=false to use an external cluster" -}}
{{- end -}}
{{- if and (not .Values.redis.bundled.enabled) (not $e.url) (not $e.seeds) -}}
{{- fail "redis.external.url is required when redis.bundled.enabled is false (or, for a Redis Cluster, redis.external.seeds)" -}}
{{- end -}}
{{- if and .Values.redis.bundled.enabled $e.url -}}
{{- fail "redis.external.url is set but redis.bundled.enabled is true: turn the bundled Redis off to use an external one" -}}
{{- end -}}
{{- if and $e.url $e.seeds -}}
{{- fail "redis.external.url and redis.external.seeds are both set: give a Redis Cluster's seed nodes in seeds only (url alone is one node)" -}}
{{- end -}}
{{- if and $e.seeds (not $e.cluster) -}}
{{- fail "redis.external.seeds lists the seed nodes of a Redis Cluster: set redis.external.cluster=true (a standalone Redis is redis.external.url)" -}}
{{- end -}}
{{- if and $e.cluster (regexMatch "/[0-9]+$" $e.url) (not (regexMatch "/0+$" $e.url)) -}}
{{- fail "redis.external.url names a database other than 0, which a Redis Cluster does not have: drop it or use /0" -}}
{{- end -}}
{{- if gt (mul 3 (int64 .Values.worker.config.heartbeatMs)) (int64 .Values.worker.config.visibilityTimeoutMs) -}}
{{- fail "worker.config.heartbeatMs must be at most a third of worker.config.visibilityTimeoutMs" -}}
{{- end -}}
{{- if and .Values.server.apiKeys.enabled (not .Values.server.apiKeys.existingSecret) (not .Values.server.apiKeys.keys) -}}
{{- fail "server.apiKeys.enabled needs server.apiKeys.existingSecret or server.apiKeys.keys" -}}
{{- end -}}
{{- if and .Values.worker.autoscaling.enabled (not .Values.worker.autoscaling.targetCPUUtilizationPercentage) (not .Values.worker.autoscaling.lag.enabled) -}}
{{- fail "worker.autoscaling needs targetCPUUtilizationPercentage or lag.enabled" -}}
{{- end -}}
{{- if and .Values.worker.autoscaling.enabled (gt (int64 .Values.worker.autoscaling.minReplicas) (int64 .Values.worker.autoscaling.maxReplicas)) -}}
{{- fail "worker.autoscaling.minReplicas is above maxReplicas" -}}
{{- end -}}
{{- $t := .Values.server.tls -}}
{{- if and $t.enabled (not $t.existingSecret) -}}
{{- fail "server.tls.enabled needs server.tls.existingSecret: a kubernetes.io/tls Secret holding tls.crt and tls.key" -}}
{{- end -}}
{{- if and $t.clientAuth (not $t.enabled) -}}
{{- fail "server.tls.clientAuth (mutual TLS) needs server.tls.enabled" -}}
{{- end -}}
{{- if and $t.clientCA.existingSecret (not $t.clientAuth) -}}
{{- fail "server.tls.clientCA.existingSecret is set but server.tls.clientAuth is false: client certificates would not be required" -}}
{{- end -}}
{{- if and $t.enabled (has (int64 .Values.server.healthPort) (list (int64 .Values.server.port) (int64 .Values.server.metricsPort))) -}}
{{- fail "server.healthPort must differ from server.port and server.metricsPort" -}}
{{- end -}}
{{- end -}}
