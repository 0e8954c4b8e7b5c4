#!/usr/bin/env bash
# Create the peers' virtualenvs: benchmarks/.peers-venv (rq, dramatiq, huey, arq, bullmq) and
# benchmarks/.peers-venv-celery (celery, which needs a newer redis-py than arq and bullmq allow).
# A peer that cannot install is skipped; run.py then reports it as skipped.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"

install() {  # install VENV REQUIREMENTS
    local venv="$1" reqs="$2"
    if [ ! -x "$venv/bin/python" ]; then
        "$python" -m venv "$venv" || return 1
        "$venv/bin/python" -m pip install -q --upgrade pip
    fi
    if ! "$venv/bin/python" -m pip install -q -r "$reqs"; then
        echo "setup_peers: installing $reqs at once failed; trying one package at a time" >&2
        grep -vE '^\s*(#|$)' "$reqs" | while read -r req; do
            "$venv/bin/python" -m pip install -q "$req" || echo "setup_peers: could not install $req" >&2
        done
    fi
    echo "setup_peers: $venv ready"
}

install "$here/.peers-venv" "$here/peers/requirements.txt"
install "$here/.peers-venv-celery" "$here/peers/requirements-celery.txt"
