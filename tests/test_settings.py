"""The settings table: each setting's parser, its default, and the one rule across settings."""

from __future__ import annotations

from dataclasses import fields

import pytest

from cycle_vmss.settings import (
    SETTINGS,
    Budget,
    HealthSource,
    Settings,
    SettingError,
    Spelling,
    build_settings,
    camel,
)

BASE = {"resource_group": "rg", "scale_set_name": "vmss"}


def test_every_field_has_one_spec_and_its_default_is_the_tables():
    assert [s.field for s in SETTINGS] == [f.name for f in fields(Settings) if f.name != "spelling"]
    defaults = build_settings(BASE)
    for spec in SETTINGS:
        if spec.default:  # what a user would write parses to the dataclass's default
            assert spec.parse(spec.default) == getattr(defaults, spec.field), spec.field


@pytest.mark.parametrize("field, raw, value", [
    ("resource_group", " rg-web.(1) ", "rg-web.(1)"),
    ("subscription_id", "0A1B2C3D-0000-4000-8000-00000000ABCD", "0a1b2c3d-0000-4000-8000-00000000abcd"),
    ("timeout_minutes", "+1440", 1440),
    ("min_ready_seconds", "0", 0),
    ("ignore_availability", "TRUE", True),
    ("max_unavailable", "25%", Budget(25, percent=True)),
    ("max_surge", "3", Budget(3)),
    ("health_source", "none", HealthSource.NONE),
    ("instance_ids", "3, 1\n3 vmss_7", ("3", "1", "vmss_7")),
    ("arm_endpoint", "https://management.azure.com/", "https://management.azure.com"),
])
def test_a_value_is_parsed_by_its_spec(field, raw, value):
    assert getattr(build_settings({**BASE, field: raw}), field) == value


@pytest.mark.parametrize("field, raw, message", [
    ("resource_group", "rg.", "--resource-group: 'rg.' is not accepted; expected a resource group name"),
    ("scale_set_name", "", "--scale-set-name: (empty) is not accepted (it is required); expected a scale set name"),
    ("subscription_id", "not-a-guid", "--subscription-id: 'not-a-guid' is not accepted; expected a subscription GUID"),
    ("timeout_minutes", "1441", "--timeout-minutes: '1441' is not accepted; expected a whole number of minutes from 1 to 1440"),
    ("dry_run", "yes", "--dry-run: 'yes' is not accepted; expected true or false (also True, TRUE, False, FALSE)"),
    ("max_unavailable", "101%", "--max-unavailable: '101%' is not accepted; expected a whole number >= 0 or a percentage"),
    ("health_source", "probe", "--health-source: 'probe' is not accepted; expected auto, extension or none"),
    ("instance_ids", "a/b", "--instance-ids: 'a/b' is not accepted; expected instance ids"),
    ("report_file", "/no/such/folder/r.json", "--report-file: '/no/such/folder/r.json' is not accepted (its folder does not exist)"),
    ("arm_endpoint", "http://x", "--arm-endpoint: 'http://x' is not accepted; expected an https:// URL"),
])
def test_a_refused_value_names_the_setting_the_value_and_what_is_accepted(field, raw, message):
    with pytest.raises(SettingError) as refused:
        build_settings({**BASE, field: raw})
    assert str(refused.value).startswith(message)


def test_a_folder_is_not_a_report_file(tmp_path):
    with pytest.raises(SettingError, match=r"\(it is a folder\)"):
        build_settings({**BASE, "report_file": str(tmp_path)})


@pytest.mark.parametrize("spelling, label", [(Spelling.CLI, "--max-unavailable and --max-surge"),
                                             (Spelling.ACTION, "max-unavailable and max-surge"),
                                             (Spelling.PIPELINE, "maxUnavailable and maxSurge")])
def test_both_budgets_zero_is_refused_in_the_users_spelling(spelling, label):
    with pytest.raises(SettingError) as refused:
        build_settings({**BASE, "max_unavailable": "0", "max_surge": "0"}, spelling)
    assert str(refused.value).startswith(f"{label}: '0 and 0' is not accepted")
    assert build_settings({**BASE, "max_unavailable": "0", "max_surge": "1"}).max_surge == Budget(1)


def test_the_pipeline_and_the_report_spell_settings_in_camel_case():
    assert camel("max-unavailable") == "maxUnavailable" and camel("dry-run") == "dryRun"
    assert list(build_settings(BASE).as_report())[:3] == ["resourceGroupName", "scaleSetName", "subscriptionId"]


@pytest.mark.parametrize("spelling, said", [
    (Spelling.CLI, "--suspend-automatic-repairs false"),
    (Spelling.ACTION, "suspend-automatic-repairs: false"),
    (Spelling.PIPELINE, "suspendAutomaticRepairs: false"),
])
def test_a_message_names_a_setting_as_its_front_end_spells_it(spelling, said):
    settings = build_settings(BASE, spelling)
    assert settings.setting("suspend_automatic_repairs", "false") == said
    assert settings.suspend_automatic_repairs is True  # the default
    assert settings == build_settings(BASE)  # the spelling is not part of what the run does
