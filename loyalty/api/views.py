"""The one shape of an API view that asks a service to do something (a POST).

Every such view did the same five things by hand: find what the URL names (a 404 before the body is
read), validate the body (a 400 changes nothing), call one service as the requesting user, answer
the result, and declare the same request and answer to the schema, with ``@idempotent``. A
``ServiceAction`` declares only what differs, in the words of ``extend_schema``::

    class MemberAdjustments(ServiceAction, request=AdjustmentIn, responses={201: LedgerEntryOut}):
        permission_classes = [has_perms("loyalty.view_member", "loyalty.adjust_points")]

        def target(self, external_id):
            return member_or_404(external_id)

        def perform(self, member, actor, data):
            return services.adjust_points(member=member, actor=actor, **data)

(``present`` where the answer is not simply the output serializer of the result).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from .base import idempotent


class ServiceAction(generics.GenericAPIView):
    """POST: ``target(**url kwargs)``, then the body checked by ``request`` (none: not read), then
    ``perform(target, actor, data)``, answered as ``responses`` says: ``{201: Out}`` answers
    ``Out(result)`` with 201, a bare ``Out`` with 200. A subclass that gives neither inherits both.
    Mix it into a list view for "GET lists, POST creates"; ``serializer_class`` (the list's rows)
    then stays the list's own."""

    request_body: type[serializers.Serializer] | None = None
    responses: type[serializers.Serializer] | dict[int, type[serializers.Serializer]]

    def __init_subclass__(cls, request: type[serializers.Serializer] | None = None, responses=None, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if request is not None:
            cls.request_body = request
        if responses is not None:
            cls.responses = responses
        if request is not None or responses is not None:
            cls.post = _declared_post(cls.request_body, cls.responses)

    def get_serializer_class(self) -> type[serializers.Serializer]:
        # The browsable API's form: the list's rows where there is a list, else the body.
        return self.serializer_class or self.request_body or serializers.Serializer

    def target(self, **url_kwargs: Any) -> Any:
        """The object the URL names (``get_object_or_404``); None where there is none."""
        return None

    def perform(self, target: Any, actor: Any, data: dict[str, Any]) -> Any:
        """Call the one service; what it returns is answered."""
        raise NotImplementedError

    def present(self, result: Any) -> Any:
        return self.output_class(result).data

    @property
    def output_class(self) -> type[serializers.Serializer]:
        return next(iter(self.responses.values())) if isinstance(self.responses, dict) else self.responses

    def handle(self, request: Request, **url_kwargs: Any) -> Response:
        target = self.target(**url_kwargs)
        data = validated(self.request_body, request) if self.request_body is not None else {}
        result = self.perform(target, request.user, data)
        status = next(iter(self.responses)) if isinstance(self.responses, dict) else 200
        return Response(self.present(result), status=status)


def validated(serializer_class: type[serializers.Serializer], request: Request, **kwargs: Any) -> dict[str, Any]:
    """The request body as ``serializer_class`` cleans it (``partial=True`` for a PATCH, ``instance=``
    where it validates against one); invalid input is a 400 with the field errors, before any write."""
    body = serializer_class(data=request.data, **kwargs)
    body.is_valid(raise_exception=True)
    return dict(body.validated_data)


def _declared_post(request_body, responses):
    """A fresh ``post`` per view class, so that each carries its own schema declaration."""

    def post(self, request: Request, **url_kwargs: Any) -> Response:
        return self.handle(request, **url_kwargs)

    return extend_schema(request=request_body, responses=responses)(idempotent(post))
