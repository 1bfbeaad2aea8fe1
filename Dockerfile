# The mover image: this project on Python, as the mover Jobs of `migrator volumes sync` run
# it (`migrator volumes backup|restore` beside each volume).
#
#   docker build -t REGISTRY/migrator-mover:VERSION .
#   docker push REGISTRY/migrator-mover:VERSION      # where both clusters can pull from
#   migrator volumes sync SNAPSHOT --from old --to new --image REGISTRY/migrator-mover:VERSION
#
# The dependencies are a layer of their own, made from pyproject.toml alone, so a change to
# the code rebuilds only the thin layer above it. (The proving ground builds the same image
# without docker: scripts/proving_ground/images.py.)
FROM python:3.12-slim-bookworm AS build
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements.txt
COPY README.md ./
COPY migrator ./migrator
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps . \
    && /opt/venv/bin/migrator --version

FROM python:3.12-slim-bookworm
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH LANG=C.UTF-8 PYTHONUNBUFFERED=1
# The mover reads and writes every file of a volume, whoever owns it: the Jobs run it as
# root (their securityContext says so), with no service-account token.
ENTRYPOINT ["migrator"]
CMD ["--help"]
