#!/bin/sh
# Serve the web app on this machine only (127.0.0.1:7860 unless --host/--port say otherwise):
#   sh runs/ui.sh [--host 127.0.0.1] [--port 7860] [--logs-dir logs]
# Needs the `ui` extra: pip install -e ".[ui]". The app never creates share links and sends no analytics.
export GRADIO_ANALYTICS_ENABLED=${GRADIO_ANALYTICS_ENABLED-False}
exec python3 -m webui "$@"
