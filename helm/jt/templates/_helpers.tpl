{{- define "jt.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "jt.labels" -}}
app.kubernetes.io/part-of: jt
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{/* What every process needs to reach the bus (NATS_URL, credentials, TLS, replicas). */}}
{{- define "jt.busEnv" -}}
- name: NATS_URL
  value: {{ .Values.nats.url | quote }}
- name: JT_BUS_REPLICAS
  value: {{ .Values.nats.streamReplicas | quote }}
{{- if .Values.nats.credentials.existingSecret }}
- name: NATS_CREDS
  value: /var/run/jt/nats-creds/{{ .Values.nats.credentials.key }}
{{- end }}
{{- if .Values.nats.tls.enabled }}
- name: NATS_TLS
  value: "true"
{{- if .Values.nats.tls.existingSecret }}
{{- if .Values.nats.tls.caKey }}
- name: NATS_TLS_CA
  value: /var/run/jt/nats-tls/{{ .Values.nats.tls.caKey }}
{{- end }}
{{- if and .Values.nats.tls.certKey .Values.nats.tls.keyKey }}
- name: NATS_TLS_CERT
  value: /var/run/jt/nats-tls/{{ .Values.nats.tls.certKey }}
- name: NATS_TLS_KEY
  value: /var/run/jt/nats-tls/{{ .Values.nats.tls.keyKey }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "jt.databaseEnv" -}}
- name: DATABASE_URL
  valueFrom: { secretKeyRef: { name: {{ .Values.database.existingSecret }}, key: {{ .Values.database.key }} } }
{{- end -}}

{{- define "jt.commonEnv" -}}
- name: RUST_LOG
  value: {{ .Values.logLevel | quote }}
{{- if .Values.otel.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .Values.otel.endpoint | quote }}
{{- end }}
{{- end -}}

{{/* The NATS secrets' volumes and mounts, when configured. */}}
{{- define "jt.busVolumes" -}}
{{- if .Values.nats.credentials.existingSecret }}
- name: nats-creds
  secret: { secretName: {{ .Values.nats.credentials.existingSecret }}, defaultMode: 0440 }
{{- end }}
{{- if and .Values.nats.tls.enabled .Values.nats.tls.existingSecret }}
- name: nats-tls
  secret: { secretName: {{ .Values.nats.tls.existingSecret }}, defaultMode: 0440 }
{{- end }}
{{- end -}}

{{- define "jt.busMounts" -}}
{{- if .Values.nats.credentials.existingSecret }}
- { name: nats-creds, mountPath: /var/run/jt/nats-creds, readOnly: true }
{{- end }}
{{- if and .Values.nats.tls.enabled .Values.nats.tls.existingSecret }}
- { name: nats-tls, mountPath: /var/run/jt/nats-tls, readOnly: true }
{{- end }}
{{- end -}}
