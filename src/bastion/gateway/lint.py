"""Warnings about a gateway configuration that is valid but probably not what was meant.

``bastion check`` prints them (and fails on them with ``--strict``). Errors, such as a
route without an ``auth`` policy, are refused when the file is loaded instead.
"""

from __future__ import annotations

from bastion.configtypes import remote_plain_http
from bastion.errors import ConfigProblem
from bastion.gateway.identifiers import IdForm
from bastion.gateway.router import overlaps
from bastion.gateway.routes import compile_input_rules, object_forms
from bastion.gateway.settings import GatewaySettings
from bastion.gateway.templates import PathTemplate


def gateway_warnings(settings: GatewaySettings) -> list[ConfigProblem]:
    found: list[ConfigProblem] = []
    for index, upstream in enumerate(settings.upstreams):
        if not upstream.timeouts_declared:
            found.append(
                ConfigProblem(
                    f"gateway.upstreams.{index}",
                    f"upstream {upstream.name} does not declare connect_timeout, read_timeout "
                    "and total_timeout; the defaults (2 s, 10 s, 30 s) may not fit it",
                )
            )
        if remote_plain_http(upstream.url):
            found.append(
                ConfigProblem(
                    f"gateway.upstreams.{index}.url",
                    f"upstream {upstream.name} is plain HTTP; credentials cross the network in "
                    "clear (refused in production)",
                )
            )
    labelled = [(r.label, PathTemplate.parse(r.path), r.methods) for r in settings.routes]
    for first, second in overlaps(labelled):
        found.append(
            ConfigProblem(
                "gateway.routes",
                f"routes {first!r} and {second!r} can match the same path; the one with a "
                "literal segment where the other has a parameter wins",
            )
        )
    for index, issuer in enumerate(settings.issuers):
        if remote_plain_http(issuer.jwks_uri):
            found.append(
                ConfigProblem(
                    f"gateway.issuers.{index}.jwks_uri",
                    f"issuer {issuer.name}'s keys are fetched over plain HTTP (refused in "
                    "production)",
                )
            )
    found += _untyped_kinds(settings)
    for index, route in enumerate(settings.routes):
        writes = set(route.methods) - {"GET", "HEAD"}
        if route.is_public and writes:
            found.append(
                ConfigProblem(
                    f"gateway.routes.{index}",
                    f"route {route.label} accepts writes without authentication",
                )
            )
        if writes - {"DELETE"} and route.input is None:
            found.append(
                ConfigProblem(
                    f"gateway.routes.{index}",
                    f"route {route.label} forwards request bodies without an input schema",
                )
            )
    return found


def _untyped_kinds(settings: GatewaySettings) -> list[ConfigProblem]:
    try:
        forms = object_forms(settings.routes, compile_input_rules(settings.routes))
    except ValueError:
        return []  # reported as an error by the configuration check
    return [
        ConfigProblem(
            "gateway.routes",
            f"no route declares the type of {kind!r} ids: digits and UUIDs are read by their "
            "shape (007 is 7); declare them in input.path (type: integer, string, or string "
            "with format: uuid)",
        )
        for kind, form in sorted(forms.items())
        if form is IdForm.AUTO
    ]
