{{/*
Names, labels and the pieces every workload shares.
*/}}

{{/* The chart name used in labels. */}}
{{- define "city-platform.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every object name. It is the release name (not release + chart) so that
NOTES.txt and the docs can say `deploy/<release>-api`. 52 characters leave room for the
longest suffix (`-migrations`) within the 63 of a DNS label.
*/}}
{{- define "city-platform.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "city-platform.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "city-platform.labels" -}}
helm.sh/chart: {{ include "city-platform.chart" . }}
{{ include "city-platform.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: city-platform
{{- end -}}

{{- define "city-platform.selectorLabels" -}}
app.kubernetes.io/name: {{ include "city-platform.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of one component: call with (dict "ctx" $ "component" "api"). */}}
{{- define "city-platform.componentLabels" -}}
{{ include "city-platform.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "city-platform.componentSelectorLabels" -}}
{{ include "city-platform.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "city-platform.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "city-platform.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "city-platform.secretName" -}}
{{- default (include "city-platform.fullname" .) .Values.secret.existingSecret -}}
{{- end -}}

{{- define "city-platform.postgresql" -}}
{{- if eq .Values.database.mode "postgresql" -}}true{{- end -}}
{{- end -}}

{{/*
Whether the reconcile worker runs inside the API process: always on SQLite (one writer),
and on PostgreSQL when no separate worker pods are asked for.
*/}}
{{- define "city-platform.embeddedWorker" -}}
{{- if or (not (include "city-platform.postgresql" .)) (eq (int .Values.worker.replicas) 0) -}}true{{- end -}}
{{- end -}}

{{- define "city-platform.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Pod Security Standard "restricted", pod level. The image's user is 10001. */}}
{{- define "city-platform.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Pod Security Standard "restricted", container level, plus a read-only root filesystem. */}}
{{- define "city-platform.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Settings from the ConfigMap and the Secret, as container env. */}}
{{- define "city-platform.env" -}}
- name: CONTROLPLANE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "city-platform.secretName" . }}
      key: {{ .Values.secret.databaseUrlKey }}
      optional: {{ not (include "city-platform.postgresql" .) }}
- name: CONTROLPLANE_SERVER_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "city-platform.secretName" . }}
      key: {{ .Values.secret.serverSecretKey }}
{{- end -}}

{{- define "city-platform.envFrom" -}}
- configMapRef:
    name: {{ include "city-platform.fullname" . }}
{{- end -}}

{{- define "city-platform.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Volumes every control-plane pod mounts: a writable /tmp and the data directory. */}}
{{- define "city-platform.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
- name: data
{{- if and (not (include "city-platform.postgresql" .)) .Values.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ default (printf "%s-data" (include "city-platform.fullname" .)) .Values.persistence.existingClaim }}
{{- else }}
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}
{{- end -}}

{{- define "city-platform.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: {{ .Values.controlplane.dataDir }}
{{- end -}}
