# One Synapse instance for scale mode (compose.yaml runs two behind nginx).
FROM python:3.11-slim
WORKDIR /app
COPY requirements.lock requirements-scale.lock pyproject.toml README.md ./
COPY synapse ./synapse
RUN pip install --no-cache-dir -r requirements.lock -r requirements-scale.lock -e . \
    && useradd --create-home synapse
USER synapse
ENV SYNAPSE_DATA_DIR=/home/synapse/data
EXPOSE 8000
CMD ["synapse", "serve", "--host", "0.0.0.0", "--port", "8000"]
