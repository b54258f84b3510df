"""The driver side of one digitize run: planning to pipeline to streaming commit to summary (run.py), the
committer, and what the console shows. The only room that imports every other one."""
