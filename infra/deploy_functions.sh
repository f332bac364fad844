#!/usr/bin/env bash
# Deploy the functions stack hybrid-<stage> with the current layer versions: reads CoreLayerArn and
# AiLayerArn from the outputs of stack hybrid-<stage>-layers (not exports, so the layers stack can
# publish new versions freely) and passes them to `osls deploy` as params. Extra arguments go to osls.
# Region: AWS_REGION (or AWS_DEFAULT_REGION), else eu-central-1, for both the lookup and the deploy.
#
#   infra/deploy_functions.sh dev --param="runpodEndpointId=abc123"
#   infra/deploy_functions.sh prod --param="runpodEndpointId=abc123" --param="corsOrigins=https://app.example.com"
set -euo pipefail
cd "$(dirname "$0")/.."
stage="${1:?usage: deploy_functions.sh dev|prod [osls deploy arguments...]}"
shift
region="${AWS_REGION:-${AWS_DEFAULT_REGION:-eu-central-1}}"

output() {
  local value
  value=$(aws cloudformation describe-stacks --region "$region" --stack-name "hybrid-$stage-layers" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text)
  if [[ "$value" != arn:*:layer:* ]]; then
    echo "stack hybrid-$stage-layers has no output $1 (run infra/build_layers.sh --publish $stage)" >&2
    exit 1
  fi
  echo "$value"
}

core=$(output CoreLayerArn)
ai=$(output AiLayerArn)
echo "layers: $core $ai"
exec npx osls deploy --stage "$stage" --region "$region" --param="coreLayerArn=$core" --param="aiLayerArn=$ai" "$@"
