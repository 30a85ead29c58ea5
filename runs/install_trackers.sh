#!/bin/sh
# The crepe and fcpe pitch trackers (fcpe is `voiceconv evaluate`'s F0 measure). Their packages declare
# torchaudio, which would pull another torch; voiceconv works without it, so they are installed without
# dependencies, after CPU torch.
set -e
python3 -m pip install --quiet --no-deps torchcrepe==0.0.24 resampy==0.4.3 torchfcpe==0.0.4 \
    local-attention==1.11.2 hyper-connections==0.4.11 einops==0.8.2
