"""Test helpers (a package: imported as ``helpers.<module>``)."""
