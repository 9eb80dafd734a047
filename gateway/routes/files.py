"""``/v1/files``: files uploaded for batch jobs, and the jobs' results, in the shape of
OpenAI's Files API (the ``openai`` SDK's ``client.files`` calls work unchanged).

A caller sees, downloads and deletes only its own files (another's id is 404, as if it
did not exist), admins included. Uploads stream to the file store at constant memory and
are limited per tier (``max_upload_bytes``) instead of by the gateway's body limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from gateway.access.auth import Caller
from gateway.errors.refusals import InvalidArgument, NotFound, PayloadTooLarge
from gateway.jobs.files import CHUNK_BYTES, TooLarge
from gateway.jobs.records import FileRecord, new_file_id, now_s
from gateway.jobs.run_batch import input_name
from gateway.routes.deps import Client, State
from gateway.routes.responses import CALLER, refusals
from gateway.state import GatewayState

router = APIRouter(prefix="/v1", tags=["files"])

UPLOAD_PATHS = frozenset({"/v1/files"})
"""Exempt from the gateway's body size limit: uploads are limited per tier."""

PURPOSES = ("batch",)
"""What a file may be uploaded for."""


async def owned_file(state: GatewayState, caller: Caller, file_id: str) -> FileRecord:
    """The caller's file; 404 for any other (another caller's is not told apart)."""
    record = await state.jobs.get_file(file_id)
    if record is None or record.owner != caller.id:
        raise NotFound(f"no file {file_id!r}")
    return record


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(CHUNK_BYTES):
        yield chunk


_UPLOAD_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "purpose"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "purpose": {"type": "string", "enum": list(PURPOSES)},
                    },
                }
            }
        },
    }
}


@router.post(
    "/files",
    summary="Upload a file (JSONL of batch requests)",
    responses=refusals(*CALLER, InvalidArgument, PayloadTooLarge),
    openapi_extra=_UPLOAD_DOC,
)
async def upload_file(request: Request, state: State, caller: Client) -> dict[str, Any]:
    most = caller.limits.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > most + 64 * 1024:  # room for the form's parts
        raise PayloadTooLarge(f"a file may hold at most {most} bytes on this tier")
    try:
        form = await request.form(max_files=1, max_fields=4)
    except MultiPartException as error:
        raise InvalidArgument(f"the body must be multipart/form-data: {error.message}") from None
    try:
        purpose, upload = form.get("purpose"), form.get("file")
        if purpose not in PURPOSES:
            raise InvalidArgument(f"purpose must be one of {', '.join(PURPOSES)}")
        if not isinstance(upload, UploadFile):
            raise InvalidArgument("send the file as the form's `file` part")
        file_id = new_file_id()
        try:
            size = await state.files.write(input_name(file_id), _chunks(upload), limit=most)
        except TooLarge:
            raise PayloadTooLarge(f"a file may hold at most {most} bytes on this tier") from None
        created = now_s()
        record = FileRecord(
            file_id,
            caller.id,
            upload.filename or "upload.jsonl",
            str(purpose),
            size,
            created,
            created + state.settings.files_ttl_s,
        )
        await state.jobs.put_file(record)
        return record.public()
    finally:
        await form.close()


@router.get("/files", summary="List your files", responses=refusals(*CALLER))
async def list_files(state: State, caller: Client) -> dict[str, Any]:
    found = await state.jobs.list_files(caller.id)
    return {"object": "list", "data": [f.public() for f in found], "has_more": False}


@router.get("/files/{file_id}", summary="A file's record", responses=refusals(*CALLER, NotFound))
async def get_file(file_id: str, state: State, caller: Client) -> dict[str, Any]:
    return (await owned_file(state, caller, file_id)).public()


@router.get(
    "/files/{file_id}/content",
    summary="A file's content",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, **refusals(*CALLER, NotFound)},
)
async def file_content(file_id: str, state: State, caller: Client) -> Response:
    record = await owned_file(state, caller, file_id)
    name = input_name(record.id)
    if not await state.files.exists(name):
        raise NotFound(f"the content of {file_id!r} is gone")
    headers = {"Content-Length": str(record.size), "Cache-Control": "no-store"}
    return StreamingResponse(
        state.files.read(name), media_type="application/octet-stream", headers=headers
    )


@router.delete("/files/{file_id}", summary="Delete a file", responses=refusals(*CALLER, NotFound))
async def delete_file(file_id: str, state: State, caller: Client) -> dict[str, Any]:
    record = await owned_file(state, caller, file_id)
    await state.jobs.delete_file(record.id)
    await state.files.delete(input_name(record.id))
    return {"id": record.id, "object": "file", "deleted": True}
