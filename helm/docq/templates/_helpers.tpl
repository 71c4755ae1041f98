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
redis-secret.yaml); an external Redis's in a Secret of the operator's. Pods get
it as REDIS_PASSWORD and compose DOCQ_REDIS_URL from it ($(REDIS_PASSWORD)), so
the password is never written into a ConfigMap.
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

{{/* The Redis URL with "$(REDIS_PASSWORD)" where the password goes, if there is one. */}}
{{- define "docq.redis.url" -}}
{{- if .Values.redis.bundled.enabled -}}
{{- printf "redis://:$(REDIS_PASSWORD)@%s:6379/%d" (include "docq.redis.host" .) (int64 .Values.redis.bundled.db) -}}
{{- else if .Values.redis.external.existingSecret -}}
{{- .Values.redis.external.url | replace "redis://" "redis://:$(REDIS_PASSWORD)@" -}}
{{- else -}}
{{- .Values.redis.external.url -}}
{{- end -}}
{{- end -}}

{{/* The environment every docq container gets besides its ConfigMap. */}}
{{- define "docq.redis.env" -}}
{{- if include "docq.redis.secretName" . -}}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "docq.redis.secretName" . }}
      key: {{ include "docq.redis.secretKey" . }}
{{ end -}}
- name: DOCQ_REDIS_URL
  value: {{ include "docq.redis.url" . | quote }}
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
{{- if and (not .Values.redis.bundled.enabled) (not .Values.redis.external.url) -}}
{{- fail "redis.external.url is required when redis.bundled.enabled is false" -}}
{{- end -}}
{{- if and .Values.redis.bundled.enabled .Values.redis.external.url -}}
{{- fail "redis.external.url is set but redis.bundled.enabled is true: turn the bundled Redis off to use an external one" -}}
{{- end -}}
{{- if ge (int64 .Values.worker.config.heartbeatMs) (int64 .Values.worker.config.visibilityTimeoutMs) -}}
{{- fail "worker.config.heartbeatMs must be below worker.config.visibilityTimeoutMs" -}}
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
{{- end -}}
