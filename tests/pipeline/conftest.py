from pipeline_fixtures import local_ray, s3_server  # noqa: F401  (fixtures shared with tests/jobs)
