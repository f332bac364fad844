#!/usr/bin/env bash
# Build the Lambda dependency layers for python3.12 on arm64 without Docker: pip downloads only
# manylinux aarch64 wheels (--only-binary) into build/layers/<name>/python. With --publish STAGE it
# zips them, uploads to ARTIFACT_BUCKET and deploys stack hybrid-<stage>-layers (needs the aws CLI).
# The stack's outputs (CoreLayerArn, AiLayerArn) are not exported, so a new build can publish new
# layer versions at any time; infra/deploy_functions.sh passes them to `osls deploy`.
#
#   infra/build_layers.sh                      # build into build/layers/{core,ai}
#   ARTIFACT_BUCKET=my-bucket infra/build_layers.sh --publish dev
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="${PIP:-.venv/bin/pip}"
OUT=build/layers

for layer in core ai; do
  rm -rf "$OUT/$layer"
  mkdir -p "$OUT/$layer/python"
  "$PIP" install --quiet --no-compile \
    --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 \
    --implementation cp --python-version 3.12 --only-binary=:all: \
    --target "$OUT/$layer/python" -r "infra/layers/$layer.txt"
done
# The ai layer must not repeat what core provides (pydantic, httpx, ... come in with openai).
( cd "$OUT/core/python" && ls -1 ) | while read -r name; do rm -rf "$OUT/ai/python/$name"; done
# boto3/botocore ship with the runtime; tests, caches and type stubs are dead weight.
for layer in core ai; do
  rm -rf "$OUT/$layer/python"/{boto3,botocore,s3transfer}* "$OUT/$layer/python/bin"
  find "$OUT/$layer/python" -type d \( -name __pycache__ -o -name tests \) -prune -exec rm -rf {} +
  echo "$layer: $(du -sh "$OUT/$layer/python" | cut -f1) unzipped"
done

if [[ "${1:-}" == "--publish" ]]; then
  stage="${2:?usage: build_layers.sh --publish dev|prod}"
  : "${ARTIFACT_BUCKET:?set ARTIFACT_BUCKET to an S3 bucket for layer zips}"
  keys=()
  for layer in core ai; do
    ( cd "$OUT/$layer" && rm -f ../$layer.zip && zip -qr9 ../$layer.zip python )
    sum=$(sha256sum "$OUT/$layer.zip" | cut -c1-16)
    key="layers/$stage/$layer-$sum.zip"
    aws s3 cp --only-show-errors "$OUT/$layer.zip" "s3://$ARTIFACT_BUCKET/$key"
    keys+=("$key")
  done
  aws cloudformation deploy --stack-name "hybrid-$stage-layers" --template-file infra/layers.yaml \
    --parameter-overrides Stage="$stage" ArtifactBucket="$ARTIFACT_BUCKET" \
    CoreLayerKey="${keys[0]}" AiLayerKey="${keys[1]}"
  aws cloudformation describe-stacks --stack-name "hybrid-$stage-layers" \
    --query "Stacks[0].Outputs[].[OutputKey,OutputValue]" --output text
  echo "next: infra/deploy_functions.sh $stage   (functions pick up these layer versions)"
fi
