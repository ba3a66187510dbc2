"""s3prl upstream for hear_sela (expert.py, hubconf.py); see docs/readme_parts/s3prl.md."""
