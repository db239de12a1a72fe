#!/usr/bin/env bash
# Regenerates the Python code of the powerplane.v1 API (messages, type stubs, gRPC stubs) in
# src/powerplane_client/_gen/ from proto/powerplane/v1/. The output is checked in; CI runs
# this and fails when the result differs from what is committed.
#
# Needs protoc and grpc_python_plugin (Debian: protobuf-compiler, protobuf-compiler-grpc).
# The committed code comes from Debian 12's protoc 3.21.12; its Python runtime
# (python3-protobuf 3.21.12, Python protobuf 4.21.12) is the version it is tested with.
#
# protoc writes absolute imports named after the proto path (`from powerplane.v1 import
# telemetry_pb2`), which only work with the output directory itself on sys.path. The files
# keep their canonical descriptor names (`powerplane/v1/dispatch.proto`, as the server's
# reflection reports them) and are moved flat into the package; one rewrite step then
# turns those imports into relative ones (`from . import telemetry_pb2`) and names the
# real module in the generated classes' `__module__`. google.protobuf's well-known types
# keep their absolute imports: they come from the protobuf runtime.
#
# google/rpc (RetryInfo) and grpc/ (health, reflection) are not generated: the client decodes
# RetryInfo itself (powerplane_client/_status.py), so it never registers a google.rpc type
# that googleapis-common-protos may register too in the same process.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$here/src/powerplane_client/_gen"

for tool in protoc grpc_python_plugin; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "$tool not found: install protobuf-compiler and protobuf-compiler-grpc (Debian)" >&2
    exit 1
  fi
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$root/proto" && protoc -I . \
  --python_out="$tmp" --pyi_out="$tmp" \
  --grpc_python_out="$tmp" --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" \
  powerplane/v1/*.proto)

rm -rf "$out"
mkdir -p "$out"
for file in "$tmp"/powerplane/v1/*.py "$tmp"/powerplane/v1/*.pyi; do
  sed -e 's/^from powerplane\.v1 import /from . import /' \
    -e "s/'powerplane\.v1\.\([a-z0-9_]*_pb2\)'/'powerplane_client._gen.\1'/" \
    "$file" >"$out/$(basename "$file")"
done
cat >"$out/__init__.py" <<'EOF'
"""Code generated from proto/powerplane/v1 by clients/python/generate.sh. DO NOT EDIT."""
EOF
echo "generated $(ls "$out" | wc -l) files in ${out#"$root"/}"
