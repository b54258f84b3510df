import pytest
import yaml
from pydantic import ValidationError

from jobs.cli import ConfigError
from jobs.evaluate import config_dict, parse_args
from rtprune.evaluation.pilot import EvaluateConfig, load_sample
from rtprune.evaluation.sweep import supports_dynamic


def test_flags_override_yaml(tmp_path):
    path = tmp_path / "eval.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "corpus": "s3://bucket/a",
                "sample_pages": 10,
                "retentions": [0.5],
                "engine": {"model": "tiny-random-v2", "max_new_tokens": 64},
            }
        )
    )
    args = parse_args(
        [
            "--config",
            str(path),
            "--sample-pages",
            "20",
            "--methods",
            "rtprune, norm",
            "--retentions",
            "0.7,0.9",
            "--max-new-tokens",
            "8",
            "--target-accuracy",
            "0.95",
        ]
    )
    config = EvaluateConfig.model_validate(config_dict(args))
    assert config.corpus == "s3://bucket/a" and config.sample_pages == 20
    assert config.methods == ["rtprune", "norm"] and config.retentions == [0.7, 0.9]
    assert config.engine.model == "tiny-random-v2" and config.engine.max_new_tokens == 8
    assert (config.target_metric, config.target) == ("accuracy", 0.95)


def test_defaults_cover_rtprune_and_every_baseline():
    config = EvaluateConfig(corpus="x")
    assert config.methods == ["rtprune", "norm", "random", "padding", "tome", "divprune", "spatial"]
    assert (config.target_metric, config.target) == ("agreement", 0.99)
    assert config.dynamic_retentions == ([0.84] if supports_dynamic() else [])


def test_config_rejects_unknown_keys_and_bad_grids():
    with pytest.raises(ValidationError):
        EvaluateConfig(corpus="x", sample_page=3)
    with pytest.raises(ValidationError):
        EvaluateConfig(corpus="x", retentions=[1.5])
    with pytest.raises(ConfigError, match="not allowed with argument"):
        parse_args(["--target-agreement", "0.9", "--target-accuracy", "0.9"])


def test_corpus_format_is_detected(omnidocbench_folder, pdf_corpus):
    odb = load_sample(EvaluateConfig(corpus=str(omnidocbench_folder), sample_pages=5))
    assert [p.page_id for p in odb.pages] == ["page_one.png", "page_two.png"]
    pdf = load_sample(EvaluateConfig(corpus=str(pdf_corpus), sample_pages=3, dpi=36))
    assert len(pdf.pages) == 3 and all(p.page_id.startswith("doc") for p in pdf.pages)
