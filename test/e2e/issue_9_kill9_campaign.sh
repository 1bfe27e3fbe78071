#!/usr/bin/env bash
# issue 9 "Proof", cheap version: a handful of trials of the kill -9 x resume campaign
# (bench/kill9_resume_campaign.sh: random kill instants during a foreach burst, then resume):
# no survivor, no successful task run again, artifacts identical to an uninterrupted run.
. "$(dirname "$0")/common.inc"
MFLOW="$MFLOW" bash "$SRC/bench/kill9_resume_campaign.sh" "${MFLOW_CAMPAIGN_TRIALS:-4}"
