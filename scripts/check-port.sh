#!/usr/bin/env bash
# check-port.sh ADDR — fail, saying what to do, when something already
# listens on ADDR (host:port, :port, [v6]:port). make run calls it before
# building and fetching, so a busy port costs a second, not a download.
set -euo pipefail
addr=${1:?usage: check-port.sh HOST:PORT}
port=${addr##*:}
host=${addr%:*}
host=${host#[}
host=${host%]}
case "$host" in
"" | 0.0.0.0) host=127.0.0.1 ;;
::) host=::1 ;;
esac
if ! [[ "$port" =~ ^[0-9]+$ ]]; then
	echo "check-port: ADDR=$addr has no port number (want HOST:PORT, e.g. 127.0.0.1:8000)" >&2
	exit 2
fi
if [ "$port" != 0 ] && (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
	echo "check-port: $host:$port is already in use (another gpt2d serve?): stop it, or run make run ADDR=127.0.0.1:8001" >&2
	exit 1
fi
