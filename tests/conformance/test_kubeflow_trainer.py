"""kubeflow-trainer against Trainer v2.1.0 and JobSet v0.10.1: images, webhooks, runtimes."""

from __future__ import annotations

import pytest
import yaml
from charm_loader import CHARMS
from conformance import facts
from unit.kubeflow_trainer.helpers import CHARM, trainer_cluster, trainer_runtimes, workloads

FACTS = facts.load("kubeflow-trainer")
META = yaml.safe_load((CHARMS / "kubeflow-trainer" / "charmcraft.yaml").read_text())


@pytest.mark.parametrize("workload", ["trainer-controller", "jobset-controller"])
def test_image_is_the_released_one(workload):
    image = FACTS[workload]["image"]
    assert META["resources"][f"{workload}-image"]["upstream-source"] == image.value, str(
        image.source
    )


def test_trainer_config_keeps_upstreams_values_but_certificates():
    fact = FACTS["trainer-controller"]["config-file"]
    ours = workloads.trainer_config()
    for key, value in fact.value.items():
        assert {k: ours[key][k] for k in value} == value, str(fact.source)
    assert ours["certManagement"] == {"enable": False}


def test_webhooks_are_upstreams():
    hooks = {h["name"]: h["path"] for h in trainer_cluster.TRAINER_WEBHOOKS}
    assert hooks == FACTS["trainer-controller"]["webhooks"].value
    jobset = trainer_cluster.JOBSET_MUTATING + trainer_cluster.JOBSET_VALIDATING
    assert {h["name"]: h["path"] for h in jobset} == FACTS["jobset-controller"]["webhooks"].value


def test_runtimes_and_images_are_the_releases():
    runtimes = trainer_runtimes.render_runtimes({})
    names = [r["metadata"]["name"] for r in runtimes]
    assert names == FACTS["trainer-controller"]["runtimes"].value
    images = FACTS["trainer-controller"]["runtime-images"].value
    for option, image in images.items():
        assert trainer_runtimes.IMAGE_DEFAULTS[option] == image
    assert trainer_runtimes.IMAGE_DEFAULTS["torch-image"] == (
        FACTS["trainer-controller"]["torch-image"].value
    )


def test_trial_defaults_are_katibs():
    kind = CHARM.TRAINJOB_TRIAL
    assert kind.success_condition == FACTS["katib-trial"]["success-condition"].value
    assert kind.primary_pod_labels == FACTS["katib-trial"]["primary-pod-labels"].value
