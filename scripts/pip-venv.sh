# Sourced by scripts/lib.sh and scripts/sam-env.sh: each Python tool this project runs is pinned and
# installed from PyPI into a virtualenv under .local/, once.
#   pip_venv VENV REQUIREMENT...   installs the requirements (`name==version`) into VENV (made if
#   missing) unless a stamp named after them says they are there, so a changed pin reinstalls.
pip_venv() {
  local venv=$1
  shift
  local stamp
  stamp="$venv/.pinned-$(printf '%s+' "$@" | tr -c 'A-Za-z0-9.=+_-' '_')"
  [ -f "$stamp" ] && return 0
  log "installing $* into ${venv#"$ROOT"/}"
  mkdir -p "$(dirname "$venv")"
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$@"
  touch "$stamp"
}
