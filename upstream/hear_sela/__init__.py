"""s3prl upstream for hear_sela (expert.py, hubconf.py); see README.md in this folder."""
