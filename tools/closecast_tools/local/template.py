"""Reads template.yaml: functions (with Globals merged), HTTP routes, event source mappings, and resolves
CloudFormation intrinsics against the local resources. The local cloud and the tests take everything from here,
so nothing about routes, streams, queues or environments is written twice."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_SHORT_TAGS = {
    "Ref": "Ref",
    "GetAtt": "Fn::GetAtt",
    "Sub": "Fn::Sub",
    "Join": "Fn::Join",
    "Select": "Fn::Select",
    "Split": "Fn::Split",
    "If": "Fn::If",
    "Equals": "Fn::Equals",
    "Not": "Fn::Not",
    "And": "Fn::And",
    "Or": "Fn::Or",
    "FindInMap": "Fn::FindInMap",
    "Base64": "Fn::Base64",
    "ImportValue": "Fn::ImportValue",
    "GetAZs": "Fn::GetAZs",
    "Cidr": "Fn::Cidr",
    "Condition": "Condition",
}


class _Loader(yaml.SafeLoader):
    pass


def _construct(long_name: str) -> Callable[[yaml.Loader, yaml.Node], Any]:
    def construct(loader: yaml.Loader, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if long_name == "Fn::GetAtt" and isinstance(value, str):
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        return {long_name: value}

    return construct


for _short, _long in _SHORT_TAGS.items():
    _Loader.add_constructor(f"!{_short}", _construct(_long))


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str  # logical id
    authorizer: str | None = None  # the name of the API's authorizer that guards it; None: open

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class JwtAuthorizerSpec:
    """A JWT authorizer of an HttpApi's `Auth.Authorizers` (issuer and audience unresolved)."""

    api: str  # logical id of the HttpApi
    name: str
    issuer: Any
    audience: Any
    identity_source: str


@dataclass(frozen=True)
class EventSourceMapping:
    function: str
    kind: str  # "Kinesis" | "SQS"
    source: Any  # the unresolved Stream/Queue value
    properties: Mapping[str, Any]


@dataclass
class ScheduleEvent:
    function: str
    name: str
    properties: dict[str, Any]


@dataclass
class FunctionSpec:
    logical_id: str
    properties: dict[str, Any]
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def package_type(self) -> str:
        return str(self.properties.get("PackageType", "Zip"))

    @property
    def code_dir(self) -> str:
        if self.package_type == "Image":
            # the handler's folder is the Dockerfile's (the context may be wider, e.g. the repository root,
            # so that the image can copy the shared packages)
            metadata = self.properties.get("Metadata", {})
            context = str(metadata.get("DockerContext", "."))
            folder = posixpath.dirname(str(metadata.get("Dockerfile", "Dockerfile")))
            return posixpath.join(context, folder) if folder else context
        return str(self.properties["CodeUri"])

    @property
    def handler(self) -> str:
        if self.package_type == "Image":
            command = self.properties.get("ImageConfig", {}).get("Command") or ["app.handler"]
            return str(command[0])
        return str(self.properties.get("Handler", "app.handler"))

    @property
    def timeout(self) -> int:
        return int(self.properties.get("Timeout", 3))

    @property
    def memory(self) -> int:
        return int(self.properties.get("MemorySize", 128))


class Template:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.root = path.parent
        try:
            self.doc: dict[str, Any] = yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - SafeLoader subclass
        except yaml.YAMLError as exc:
            raise TemplateError(f"{path}: {exc}") from exc
        self.resources: dict[str, Any] = self.doc.get("Resources", {})
        self.parameters: dict[str, Any] = self.doc.get("Parameters", {})
        globals_fn = self.doc.get("Globals", {}).get("Function", {})
        self.functions: dict[str, FunctionSpec] = {}
        for logical_id, resource in self.resources.items():
            if resource.get("Type") != "AWS::Serverless::Function":
                continue
            props = {k: v for k, v in globals_fn.items() if k != "Environment"}
            props.update(resource.get("Properties", {}))
            props["Metadata"] = resource.get("Metadata", {})
            env = dict(globals_fn.get("Environment", {}).get("Variables", {}))
            env.update(resource.get("Properties", {}).get("Environment", {}).get("Variables", {}))
            self.functions[logical_id] = FunctionSpec(logical_id, props, env)

    def of_type(self, type_name: str) -> list[str]:
        return [k for k, v in self.resources.items() if v.get("Type") == type_name]

    def parameter_defaults(self) -> dict[str, Any]:
        return {name: spec.get("Default") for name, spec in self.parameters.items()}

    def _api_auth(self, api: Any) -> dict[str, Any]:
        """The `Auth` of the HttpApi an event's `ApiId` names (`{}` for SAM's implicit API)."""
        if isinstance(api, dict) and "Ref" in api:
            auth: dict[str, Any] = self.resources.get(api["Ref"], {}).get("Properties", {}).get("Auth", {})
            return auth
        return {}

    def routes(self) -> list[Route]:
        found = []
        for fn in self.functions.values():
            for event in fn.properties.get("Events", {}).values():
                if event.get("Type") == "HttpApi":
                    props = event.get("Properties", {})
                    authorizer = props.get("Auth", {}).get("Authorizer") or self._api_auth(
                        props.get("ApiId")
                    ).get("DefaultAuthorizer")
                    found.append(
                        Route(
                            str(props.get("Method", "ANY")).upper(),
                            str(props.get("Path", "/$default")),
                            fn.logical_id,
                            None if authorizer in (None, "NONE") else str(authorizer),
                        )
                    )
        return found

    def jwt_authorizers(self) -> dict[str, JwtAuthorizerSpec]:
        """The JWT authorizers of the template's HTTP APIs, by name."""
        found = {}
        for api in self.of_type("AWS::Serverless::HttpApi"):
            auth = self.resources[api].get("Properties", {}).get("Auth", {})
            for name, spec in (auth.get("Authorizers") or {}).items():
                config = spec.get("JwtConfiguration")
                if config is None:
                    raise TemplateError(f"{api} authorizer {name}: only JWT authorizers run locally")
                found[name] = JwtAuthorizerSpec(
                    api,
                    name,
                    config.get("issuer"),
                    config.get("audience"),
                    str(spec.get("IdentitySource", "$request.header.Authorization")),
                )
        return found

    def event_source_mappings(self) -> list[EventSourceMapping]:
        found = []
        for fn in self.functions.values():
            for event in fn.properties.get("Events", {}).values():
                kind = event.get("Type")
                if kind in ("Kinesis", "SQS"):
                    props = event.get("Properties", {})
                    source = props.get("Stream") if kind == "Kinesis" else props.get("Queue")
                    found.append(EventSourceMapping(fn.logical_id, kind, source, props))
        return found

    def schedules(self) -> list[ScheduleEvent]:
        """Every function's `Schedule` events (enabled or not: `Enabled: false` / `State: DISABLED` is read
        after the properties are resolved)."""
        return [
            ScheduleEvent(fn.logical_id, name, event.get("Properties", {}))
            for fn in self.functions.values()
            for name, event in fn.properties.get("Events", {}).items()
            if event.get("Type") == "Schedule"
        ]


# ----------------------------------------------------------------------------- intrinsic resolution
Resolver = Callable[[str, str | None], Any]  # (logical id, attribute or None for Ref) -> value

_SUB = re.compile(r"\$\{([^}!][^}]*)\}")


def resolve(value: Any, ref: Resolver, parameters: Mapping[str, Any]) -> Any:
    """Resolve intrinsics in `value`. `ref(logical_id, attr)` answers for resources (attr None for !Ref);
    parameters and pseudo parameters come from `parameters`."""

    def ref_name(name: str) -> Any:
        if name in parameters:
            return parameters[name]
        return ref(name, None)

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return ref_name(str(arg))
            if key == "Fn::GetAtt":
                logical_id, attr = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return ref(str(logical_id), str(attr))
            if key == "Fn::Sub":
                template, variables = (arg, {}) if isinstance(arg, str) else (arg[0], walk(arg[1]))

                def substitute(match: re.Match[str]) -> str:
                    name = match.group(1)
                    if name in variables:
                        return str(variables[name])
                    if "." in name:
                        logical_id, attr = name.split(".", 1)
                        return str(ref(logical_id, attr))
                    return str(ref_name(name))

                return _SUB.sub(substitute, template)
            if key == "Fn::Join":
                sep, items = arg
                return str(sep).join(str(v) for v in walk(items))
            if key == "Fn::Select":
                index, items = walk(arg)
                return items[int(index)]
            if key == "Fn::Split":
                sep, text = walk(arg)
                return str(text).split(str(sep))
            if key in ("Fn::If", "Fn::FindInMap", "Fn::ImportValue", "Fn::GetAZs", "Fn::Cidr"):
                raise TemplateError(f"{key} is not supported by the local cloud")
        return {k: walk(v) for k, v in node.items()}

    return walk(value)
