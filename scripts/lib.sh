# Shared helpers for lbd's scripts. Source it; do not run it.

# ensure_go puts a Go toolchain on PATH, or explains. go.mod asks for
# 1.26.8; any Go from 1.21 on fetches it by itself (GOTOOLCHAIN=auto).
ensure_go() {
	if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
		export PATH="/usr/local/go/bin:$PATH"
	fi
	if ! command -v go >/dev/null 2>&1; then
		echo "lbd: Go is needed: 1.26.8, or any Go from 1.21 on, which fetches 1.26.8 itself (Debian 12's golang-go, 1.19, is too old)." >&2
		echo "     Install it under /usr/local/go, see https://go.dev/doc/install" >&2
		exit 1
	fi
	export PATH="$(go env GOPATH)/bin:$PATH"
}

# apt_install installs Debian packages that are missing, and only those.
apt_install() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "lbd: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
		exit 1
	fi
	echo "== installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# with_progress WHAT CMD...: runs CMD, and while it runs says every 30 s
# that WHAT is still going and for how long, so a long first build is
# never a silent terminal. Returns CMD's status.
with_progress() {
	local what=$1 start=$SECONDS pid
	shift
	"$@" &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		sleep 1
		if (((SECONDS - start) % 30 == 0)); then
			echo "   ... $what: still running, $((SECONDS - start)) s so far" >&2
		fi
	done
	wait "$pid"
}
