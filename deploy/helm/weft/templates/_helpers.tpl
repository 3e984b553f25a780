{{- define "weft.labels" -}}
app.kubernetes.io/name: weft-site
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}
