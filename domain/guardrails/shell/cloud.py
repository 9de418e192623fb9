"""Command rules, family module: cloud and cluster CLIs deleting what they manage (aws, gcloud/gsutil, az, doctl,
hcloud, openstack, oci, kubectl/oc, terraform/tofu/pulumi, helm, eksctl). Listing, describing and deleting one
named object are fine; deleting buckets recursively, projects, resource groups, namespaces, everything (`--all`),
or a whole stack is blocked."""

from __future__ import annotations

import re

from domain.guardrails.shell.analyzer import Analyzer, _name
from domain.guardrails.shell.parser import Cmd
from domain.guardrails.shell.registry import handles, rule
from domain.guardrails.verdict import Risk

CLOUD_DESTROY = rule("cloud_destroy", "cloud_destroy",
                     "deletes cloud resources, cluster namespaces or whole infrastructure stacks")

_DELETE_VERB = re.compile(r"^(?:delete|destroy|terminate|purge|remove|rb|rm|deregister|del|uninstall|un|"
                          r"(?:delete|terminate|remove|purge|deregister|destroy)-[\w-]+|[\w-]+:(?:destroy|delete))$")
_BROAD_KINDS = re.compile(r"^(?:ns|namespaces?|nodes?|no|pv|persistentvolumes?|crds?|customresourcedefinitions?|"
                          r"clusterroles?|clusterrolebindings?|projects?|clusters?|storageclass(?:es)?)$")


# Everyday deletes of one small thing (a queue message, a tag, one object, a policy version) are not destruction.
_ROUTINE_AWS = re.compile(r"^(?:delete|remove)-(?:message\w*|tags?|object|marker|alias|notification\w*|lifecycle\w*|"
                          r"policy-version|login-profile|retention-policy|metric-filter|subscription-filter|"
                          r"(?:image|layer|attachment)s?|scheduled-action|alarms?|dashboards?|parameter|"
                          r"resource-policy|permission|targets|rule)$")


def _positional(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv[1:]:
        if skip:
            skip = False
            continue
        if a.startswith("-"):
            skip = "=" not in a and a in ("-n", "--namespace", "--region", "--profile", "--zone", "-g",
                                          "--resource-group", "--project", "-o", "--output", "--context", "-l")
            continue
        out.append(a)
    return out


@handles("aws", "awslocal")
def aws(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    pos = _positional(argv)
    if len(pos) < 2:
        return
    service, verb = pos[0], pos[1]
    if service == "s3":
        if verb == "rb" or (verb == "rm" and ("--recursive" in argv or any(re.fullmatch(r"s3://[^/]+/?", p)
                                                                             for p in pos[2:]))):
            an.add(CLOUD_DESTROY, Risk.HIGH, f"aws s3 {verb} {' '.join(pos[2:3])} removes a bucket's contents")
        elif verb == "sync" and "--delete" in argv:
            an.add(CLOUD_DESTROY, Risk.MEDIUM, "aws s3 sync --delete removes files at the destination")
    elif re.match(r"^(?:delete|terminate|purge|deregister|remove|disable)-", verb) and not _ROUTINE_AWS.match(verb):
        an.add(CLOUD_DESTROY, Risk.HIGH, f"aws {service} {verb}")


@handles("gcloud", "gsutil", "az", "doctl", "hcloud", "openstack", "oci", "linode-cli", "ibmcloud", "scw",
         "eksctl", "heroku", "flyctl", "fly", "vercel", "gcloud.cmd", "az.cmd")
def cloud_cli(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    name, pos = _name(argv[0]), _positional(argv)
    if name == "gsutil":
        if pos[:1] == ["rb"] or (pos[:1] == ["rm"] and re.search(r"-\w*[ra]", " ".join(argv))):
            an.add(CLOUD_DESTROY, Risk.HIGH, f"gsutil {' '.join(pos[:2])} removes a bucket's contents")
        return
    verbs = [p for p in pos if _DELETE_VERB.match(p)]
    if verbs and not any(p in ("list", "describe", "show", "get") for p in pos[:3]):
        an.add(CLOUD_DESTROY, Risk.HIGH, f"{name} {' '.join(pos[:4])}")


@handles("kubectl", "oc", "k", "microk8s.kubectl", "k3s")
def kubectl(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    pos = _positional(argv)
    if _name(argv[0]) == "k3s" and pos[:1] == ["kubectl"]:
        pos = pos[1:]
    if not pos or pos[0] not in ("delete", "drain"):
        return
    everything = any(a in ("--all", "-A", "--all-namespaces") for a in argv)
    kinds = [k for p in pos[1:2] for k in p.split(",")]
    if pos[0] == "drain":
        an.add(CLOUD_DESTROY, Risk.MEDIUM, f"kubectl drain {' '.join(pos[1:2])}")
    elif everything or any(_BROAD_KINDS.match(k) for k in kinds):
        an.add(CLOUD_DESTROY, Risk.HIGH, f"kubectl delete {' '.join(pos[1:3])}{' --all' if everything else ''}")


@handles("terraform", "tofu", "terragrunt", "pulumi", "cdk", "cdktf", "sst", "serverless", "sls")
def stacks(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    pos = _positional(argv)
    destroy = "destroy" in pos[:2] or (pos[:1] in (["apply"], ["up"], ["plan"]) and "-destroy" in argv) or \
        pos[:2] == ["stack", "rm"] or "remove" in pos[:1] and _name(argv[0]) in ("serverless", "sls")
    if not destroy:
        return
    targeted = any(a.startswith(("-target", "--target")) for a in argv)
    if pos[:1] == ["plan"]:
        return
    an.add(CLOUD_DESTROY, Risk.MEDIUM if targeted else Risk.HIGH,
           f"{_name(argv[0])} destroys {'one target of ' if targeted else ''}the whole stack")


@handles("helm")
def helm(an: Analyzer, cmd: Cmd, argv: list[str]) -> None:
    pos = _positional(argv)
    if pos[:1] and pos[0] in ("uninstall", "delete", "del", "un"):
        an.add(CLOUD_DESTROY, Risk.HIGH, f"helm {pos[0]} {' '.join(pos[1:3])}")
