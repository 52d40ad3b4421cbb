# Shared settings for foil's scripts (sourced, not run).
#
# Build output lives outside the checkout, in foil's cache folder, so that a
# fresh clone on the same machine (CI's, or yours) reuses compiled
# dependencies instead of spending half an hour on polars and candle again.
FOIL_CACHE="${FOIL_CACHE:-$HOME/.cache/foil}"
export FOIL_CACHE
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$FOIL_CACHE/target}"
