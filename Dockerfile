# The action's image: Python with the pinned, hash-checked dependencies and the action itself.
FROM python:3.11-slim-bookworm

# git: changed-file detection in pull requests; the workspace is mounted with another owner.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git=1:2.39.* \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory /github/workspace

COPY requirements.lock /opt/osiris/requirements.lock
RUN pip install --no-cache-dir --require-hashes -r /opt/osiris/requirements.lock

COPY pyproject.toml README.md /opt/osiris/
COPY osiris_action /opt/osiris/osiris_action
COPY drivers /opt/osiris/drivers
RUN pip install --no-cache-dir --no-deps /opt/osiris

ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
ENTRYPOINT ["python", "-m", "osiris_action.action"]
