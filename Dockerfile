# The image of the cycle-vmss GitHub Action. The runner builds it for `uses: ./`, forks and
# commits of main; the release workflow publishes it to GHCR for amd64 and arm64, and a release's
# action.yml runs that image by digest (CONTRIBUTING.md, Releasing).
FROM python:3.12-slim-bookworm

# Unbuffered so log lines and workflow commands reach the runner in order and at once.
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies before the code, so this layer is reused while only the code changes.
# Wheels only (no compiler in the image), every file checked against the lock's hashes.
COPY requirements/action.txt requirements/action.txt
RUN pip install --no-cache-dir --no-deps --require-hashes --only-binary=:all: \
        -r requirements/action.txt

COPY cycle_vmss/ cycle_vmss/
COPY entrypoint.py ./
RUN python -m compileall -q cycle_vmss entrypoint.py

# Exec form: Python is PID 1 and receives the runner's SIGINT and SIGTERM itself.
ENTRYPOINT ["python", "/app/entrypoint.py"]
