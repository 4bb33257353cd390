"""A submission made ready to run: loaded safely, repaired against the release, checked for tampering.
Trusted side: reads untrusted notebooks, in a separate bounded process where parsing could blow up."""
