"""HTCondor through dask-jobqueue's ``HTCondorCluster``, and the check of its submit description.

The check reads the description with HTCondor's own Python bindings (``htcondor2.Submit``, which
needs no schedd), parses every ClassAd expression with ``classad2`` and evaluates the resource
requests, so a typo in a site attribute shows up before anything is submitted.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from typing import Any

from highrate.base.optional import require
from highrate.errors import ConfigError
from highrate.execution.clusters.jobqueue import BATCH_KEYS, JobqueueKind, seconds
from highrate.execution.clusters.kinds import Finding
from highrate.execution.clusters.profile import ClusterProfile

# a bare word on the right of `+Attr = word` is a ClassAd attribute reference, not text
_BARE_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CLASSAD_WORDS = {"true", "false", "undefined", "error"}


@dataclass(frozen=True)
class HTCondorKind(JobqueueKind):
    """HTCondor has no queue or account; the walltime becomes ``+MaxRuntime`` (seconds) and
    ``env`` the submit description's ``environment``, so the job's environment is HTCondor's.
    With ``image`` the job runs in that container (HTCondor's container universe)."""

    def options(self, profile: ClusterProfile) -> dict[str, Any]:
        options = super().options(profile)
        options.pop("walltime")
        options["job_script_prologue"] = list(profile.job_script_prologue)  # env: below, not `export`
        directives: dict[str, str] = {}
        if profile.env:
            htcondor = require("dask_jobqueue.htcondor", "batch", purpose=profile.where)
            directives["environment"] = f'"{htcondor.quote_environment(dict(profile.env))}"'
        if profile.image:
            directives["universe"] = "container"
            plain = "://" not in profile.image and not profile.image.startswith("/")
            directives["container_image"] = f"docker://{profile.image}" if plain else profile.image
            directives["transfer_executable"] = "false"  # /bin/sh is the image's, not the submit host's
        for line in options.pop("job_extra_directives"):
            key, _, value = line.partition("=")
            directives[key.strip()] = value.strip()
        if profile.walltime:
            directives["+MaxRuntime"] = str(seconds(profile))
        options["job_extra_directives"] = directives
        options["disk"] = profile.disk or profile.memory
        return options

    def check(self, profile: ClusterProfile) -> list[Finding]:
        return check_submit(profile, self.describe(profile))


def check_submit(profile: ClusterProfile, text: str) -> list[Finding]:
    """Parse a submit description as condor_submit would and compare it with the profile."""
    htcondor = require("htcondor2", "check", purpose=f"checking {profile.where}")
    classad = require("classad2", "check", purpose=f"checking {profile.where}")
    try:
        submit = htcondor.Submit(text)
    except (ValueError, RuntimeError) as err:
        return [Finding("submit description", "htcondor2.Submit", False, str(err))]
    entries = {k: str(v) for k, v in submit.items()}
    queue = submit.getQArgs().strip() or "1 job"
    findings = [Finding("submit description", "htcondor2.Submit", True, f"{len(entries)} commands, Queue {queue}")]
    ad = classad.ClassAd()
    bad: list[str] = []
    for key, value in entries.items():
        if not key.startswith("MY."):
            continue
        try:
            ad[key[3:]] = classad.ExprTree(value)
        except Exception as err:  # classad2.ClassAdException: the message names no type to catch narrower
            bad.append(f"+{key[3:]} = {value}: not a ClassAd expression ({err})")
    for key, value in entries.items():
        word = value.strip()
        if key.startswith("MY.") and _BARE_WORD.match(word) and word.lower() not in _CLASSAD_WORDS and word not in ad:
            bad.append(f"+{key[3:]} = {word} refers to an attribute {word!r}, which the job does not have; "
                       f'for text write +{key[3:]} = "{word}"')
    findings.append(Finding("job attributes (+Name / MY.Name)", "classad2.ExprTree", not bad,
                            "; ".join(bad) or f"{sum(k.startswith('MY.') for k in entries)} attributes parse"))
    findings.append(_requests(profile, entries, ad, classad))
    findings.extend(_command(profile, entries))
    return findings


def _requests(profile: ClusterProfile, entries: dict[str, str], ad: Any, classad: Any) -> Finding:
    """RequestCpus, RequestMemory (MiB) and RequestDisk (KiB) evaluated in the job's ClassAd."""
    from dask.utils import parse_bytes

    memory = parse_bytes(profile.memory)
    disk = parse_bytes(profile.disk or profile.memory)
    wanted = {"RequestCpus": profile.cores, "RequestMemory": memory // 2**20, "RequestDisk": disk // 2**10}
    got: dict[str, Any] = {}
    for key in wanted:
        try:
            got[key] = ad.eval(key) if key in ad else classad.ExprTree(entries[key]).eval(ad)
        except Exception as err:  # a missing or unparsable request: say which
            got[key] = f"error ({err})"
    wrong = [f"{k} = {got[k]}, expected {v}" for k, v in wanted.items() if got[k] != v]
    shown = ", ".join(f"{k} = {v}" for k, v in got.items())
    return Finding("resource requests", "classad2 (evaluated)", not wrong, "; ".join(wrong) or shown)


def _command(profile: ClusterProfile, entries: dict[str, str]) -> list[Finding]:
    """The executable, the shell line it runs (read by ``sh -n``) and the job's environment."""
    try:
        arguments = split_words(_unquote(entries.get("Arguments", "")))
        environment = dict(w.partition("=")[::2] for w in split_words(_unquote(entries.get("environment", '""'))))
    except ConfigError as err:
        return [Finding("Arguments / environment", "HTCondor quoting rules", False, str(err))]
    findings = []
    ok = entries.get("Executable") == "/bin/sh" and len(arguments) == 2 and arguments[0] == "-c"
    line = arguments[1] if ok else ""
    if ok:
        done = subprocess.run(["sh", "-n", "-c", line], capture_output=True, text=True, check=False)
        ok, why = done.returncode == 0, done.stderr.strip()
    else:
        why = f"expected Executable = /bin/sh and Arguments = \"-c '...'\", got {entries.get('Executable')!r}, {arguments!r}"
    worker = line.rpartition("; ")[2]
    if ok and " -m distributed.cli.dask_worker tcp://" not in worker:
        ok, why = False, f"the last command is not dask-jobqueue's worker: {worker!r}"
    findings.append(Finding("worker command line", "sh -n", ok, why or worker))
    wrong = [k for k, v in profile.env.items() if environment.get(k) != v]
    findings.append(Finding("job environment", "HTCondor quoting rules", not wrong,
                            f"differs for {', '.join(wrong)}" if wrong else ", ".join(sorted(environment)) or "none set"))
    return findings


def _unquote(value: str) -> str:
    """The inside of a double-quoted submit value, with HTCondor's doubled ``""`` undone."""
    value = value.strip()
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        raise ConfigError(f"expected a double-quoted value (HTCondor's new syntax), got {value!r}.")
    return value[1:-1].replace('""', '"')


def split_words(text: str) -> list[str]:
    """Words of HTCondor's new argument/environment syntax: blanks separate, ``'...'`` groups,
    ``''`` inside quotes is one ``'``. The inverse of dask-jobqueue's ``quote_arguments``."""
    words: list[str] = []
    word: str | None = None
    quoted, i = False, 0
    while i < len(text):
        c = text[i]
        if quoted and c == "'" and text[i + 1:i + 2] == "'":
            word, i = (word or "") + "'", i + 2
            continue
        if c == "'":
            quoted, word = not quoted, word or ""
        elif c.isspace() and not quoted:
            if word is not None:
                words.append(word)
            word = None
        else:
            word = (word or "") + c
        i += 1
    if quoted:
        raise ConfigError(f"unterminated single quote in {text!r}.")
    return [*words, word] if word is not None else words


HTCONDOR = HTCondorKind("htcondor", "HTCondorCluster", "dask_jobqueue.htcondor:HTCondorJob",
                        BATCH_KEYS | {"disk", "image"}, account_keyword=None)
