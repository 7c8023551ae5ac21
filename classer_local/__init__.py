"""classer_local."""
