"""LMS downloads into `submitted/<student>/<lab>/`: layouts, identities, submission times.
Trusted side: reads untrusted files, bounded before parsing."""
