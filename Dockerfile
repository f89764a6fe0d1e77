FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN useradd --create-home --uid 10001 survey

COPY pyproject.toml README.md constraints.txt ./
COPY conversations ./conversations
COPY storage ./storage
COPY bot ./bot
COPY backend ./backend
RUN pip install -c constraints.txt . && mkdir -p /data && chown survey /data

USER survey
ENV HOST=0.0.0.0 PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz').status == 200 else 1)"
CMD ["guidance-survey", "serve"]
