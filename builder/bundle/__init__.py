"""Writing bundles (docs/BUNDLE.md): stage a copy, add or replace tiers, record sizes and hashes, swap it in."""
