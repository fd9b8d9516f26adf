FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hub ./hub
COPY connectors ./connectors
COPY sandbox ./sandbox
RUN pip install --no-cache-dir . && useradd --system --home /data orderhook && mkdir -p /data \
    && chown orderhook /data
USER orderhook
WORKDIR /data
ENV ORDERHOOK_CONFIG=/data/orderhook.toml ORDERHOOK_DB=/data/orderhook.db ORDERHOOK_HOST=0.0.0.0
EXPOSE 8600
VOLUME ["/data"]
CMD ["orderhook", "serve"]
