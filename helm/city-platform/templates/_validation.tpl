{{/*
Checks of value combinations that values.schema.json cannot express. Each message
names the values key to change and what to set it to; tests/helm assert the texts.
Included once from configmap.yaml, which every mode renders.
*/}}
{{- define "city-platform.validate" -}}
{{- $pg := include "city-platform.postgresql" . -}}
{{- if and (not $pg) (gt (int .Values.api.replicas) 1) -}}
{{- fail (printf "api.replicas is %d but database.mode is \"sqlite\": SQLite allows exactly one API replica. Set api.replicas to 1, or set database.mode to \"postgresql\" (with database.url or secret.existingSecret) to run more." (int .Values.api.replicas)) -}}
{{- end -}}
{{- if and (not $pg) (gt (int .Values.worker.replicas) 1) -}}
{{- fail (printf "worker.replicas is %d but database.mode is \"sqlite\": with SQLite one worker runs inside the API pod. Set worker.replicas to 1 (or 0), or set database.mode to \"postgresql\" to run separate workers." (int .Values.worker.replicas)) -}}
{{- end -}}
{{- if and $pg (not .Values.database.url) (not .Values.secret.existingSecret) -}}
{{- fail "database.mode is \"postgresql\" but neither database.url nor secret.existingSecret is set. Set database.url to the PostgreSQL URL (postgresql+psycopg://user:password@host:5432/db), or name a Secret holding it in secret.existingSecret." -}}
{{- end -}}
{{- if and $pg .Values.database.url (not (hasPrefix "postgresql" .Values.database.url)) -}}
{{- fail "database.url must be a PostgreSQL URL starting with \"postgresql\" (e.g. postgresql+psycopg://user:password@host:5432/db) when database.mode is \"postgresql\"." -}}
{{- end -}}
{{- if and (not $pg) .Values.database.url -}}
{{- fail "database.url is set but database.mode is \"sqlite\", which ignores it. Set database.mode to \"postgresql\", or remove database.url." -}}
{{- end -}}
{{- if and .Values.database.url .Values.secret.existingSecret -}}
{{- fail "database.url and secret.existingSecret are both set; the chart creates no Secret when secret.existingSecret is set. Put the URL in that Secret (key secret.databaseUrlKey) and remove database.url." -}}
{{- end -}}
{{- if and .Values.secret.serverSecret .Values.secret.existingSecret -}}
{{- fail "secret.serverSecret and secret.existingSecret are both set; the chart creates no Secret when secret.existingSecret is set. Put the server secret in that Secret (key secret.serverSecretKey) and remove secret.serverSecret." -}}
{{- end -}}
{{- if eq (default .Chart.AppVersion .Values.image.tag) "latest" -}}
{{- fail "image.tag is \"latest\", which the platform policy refuses (it is not reproducible). Set image.tag to a released version, or image.digest to a sha256 digest." -}}
{{- end -}}
{{- if and .Values.ingress.enabled (not .Values.ingress.hosts) -}}
{{- fail "ingress.enabled is true but ingress.hosts is empty. Add at least one host name to ingress.hosts." -}}
{{- end -}}
{{- if and (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) -}}
{{- fail "serviceAccount.create is false but serviceAccount.name is empty. Name the existing ServiceAccount in serviceAccount.name, or set serviceAccount.create to true." -}}
{{- end -}}
{{- range $name, $value := .Values.controlplane.extraSettings -}}
{{- if not (hasPrefix "CONTROLPLANE_" $name) -}}
{{- fail (printf "controlplane.extraSettings.%s: setting names must start with CONTROLPLANE_ (the control plane reads nothing else)." $name) -}}
{{- end -}}
{{- if has $name (list "CONTROLPLANE_DATABASE_URL" "CONTROLPLANE_SERVER_SECRET") -}}
{{- fail (printf "controlplane.extraSettings.%s is a secret: put it in database.url / secret.serverSecret or in secret.existingSecret, never in the ConfigMap." $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
