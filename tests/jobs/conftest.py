import sys
from pathlib import Path

# Share the pipeline fixtures (local Ray, S3 server) with the job tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from pipeline_fixtures import local_ray  # noqa: E402, F401
