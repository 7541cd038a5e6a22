"""gRPC servicer of firecrest_mesh.utilities.v1.UtilitiesService (FirecREST v2 `/filesystem/.../ops`).

Thin: each handler validates the request's paths (`services.common.paths`), builds its command with
the module in `commands/`, runs it as the caller (`remote`), and shapes the answer.
"""

from __future__ import annotations

from firecrest_mesh.utilities.v1 import utilities_pb2, utilities_pb2_grpc
from google.api import httpbody_pb2
from services.common import paths
from services.common.config import Config, SystemConfig
from services.common.errors import ApiError
from services.common.identity import Caller, caller
from services.common.ssh.pool import SshPool
from services.common.rpc import require_system, send_http_code
from services.utilities import multipart, remote
from services.utilities.commands import (archive, change, checksum, file_type, head_tail, listing, rm,
                                         stat, transfer, view)

DOWNLOAD_CHUNK = 1 << 20


def _optional(request, name: str) -> int | None:
    return getattr(request, name) if request.HasField(name) else None


class UtilitiesService(utilities_pb2_grpc.UtilitiesServiceServicer):
    def __init__(self, config: Config, pool: SshPool):
        self._config = config
        self._pool = pool

    def _target(self, request, context, *spellings: str) -> tuple[Caller, SystemConfig, str]:
        """The caller, the system and the validated path (first non-empty of `spellings`)."""
        who = caller(context)
        system = require_system(self._config, request.system_name)
        path = paths.first_path(*(getattr(request, s) for s in spellings or ("path",)))
        return who, system, paths.validate(system, path)

    async def _run(self, who: Caller, system: SystemConfig, *argvs: list[str], **kwargs):
        return await remote.run(self._pool, who, system, remote.command_line(system, *argvs), **kwargs)

    async def ListFiles(self, request, context):
        who, system, path = self._target(request, context)
        result = await self._run(who, system, *listing.list_argvs(
            path, show_hidden=request.show_hidden, recursive=request.recursive,
            dereference=request.dereference))
        return utilities_pb2.ListFilesResponse(
            output=listing.parse_listing(result.stdout, path, request.numeric_uid))

    async def HeadFile(self, request, context):
        who, system, path = self._target(request, context)
        argv, frame = head_tail.head_argv(path, _optional(request, "num_bytes"),
                                          _optional(request, "num_lines"), request.skip_trailing)
        result = await self._run(who, system, argv)
        return utilities_pb2.HeadFileResponse(output=head_tail.parse(result.stdout, frame))

    async def TailFile(self, request, context):
        who, system, path = self._target(request, context)
        argv, frame = head_tail.tail_argv(path, _optional(request, "num_bytes"),
                                          _optional(request, "num_lines"), request.skip_heading)
        result = await self._run(who, system, argv)
        return utilities_pb2.TailFileResponse(output=head_tail.parse(result.stdout, frame))

    async def ViewFile(self, request, context):
        who, system, path = self._target(request, context)
        argv = view.argv(path, _optional(request, "size"), _optional(request, "offset"),
                         system.max_ops_file_size)
        try:
            result = await self._run(who, system, argv, max_output=system.max_ops_file_size + 1)
        except ApiError as exc:
            raise view.refine_error(exc) from None
        return utilities_pb2.ViewFileResponse(output=view.parse(result.stdout))

    async def ChecksumFile(self, request, context):
        who, system, path = self._target(request, context)
        result = await self._run(who, system, checksum.argv(path))
        return utilities_pb2.ChecksumFileResponse(output=utilities_pb2.FileChecksum(
            algorithm="SHA256", checksum=checksum.parse(result.stdout)))

    async def GetFileType(self, request, context):
        who, system, path = self._target(request, context)
        result = await self._run(who, system, file_type.argv(path), errors_on_stdout=True)
        return utilities_pb2.GetFileTypeResponse(output=file_type.parse(result.stdout))

    async def StatFile(self, request, context):
        who, system, path = self._target(request, context)
        result = await self._run(who, system, stat.argv(path, request.dereference))
        return utilities_pb2.StatFileResponse(output=stat.parse(result.stdout))

    async def ChangeMode(self, request, context):
        who, system, path = self._target(request, context, "path", "source_path")
        result = await self._run(who, system, *change.chmod_argvs(path, request.mode))
        return utilities_pb2.ChangeModeResponse(output=listing.parse_entry(result.stdout, path))

    async def ChangeOwnership(self, request, context):
        who, system, path = self._target(request, context, "path", "source_path")
        result = await self._run(who, system, *change.chown_argvs(path, request.owner, request.group))
        return utilities_pb2.ChangeOwnershipResponse(output=listing.parse_entry(result.stdout, path))

    async def MakeDirectory(self, request, context):
        who, system, path = self._target(request, context, "path", "source_path")
        result = await self._run(who, system, *change.mkdir_argvs(path, request.parent))
        await send_http_code(context, 201)
        return utilities_pb2.MakeDirectoryResponse(output=listing.parse_entry(result.stdout, path))

    async def CreateSymlink(self, request, context):
        who, system, target = self._target(request, context, "path", "source_path")
        link_path = paths.validate(system, request.link_path, name="linkPath")
        result = await self._run(who, system, *change.symlink_argvs(target, link_path))
        await send_http_code(context, 201)
        return utilities_pb2.CreateSymlinkResponse(output=listing.parse_entry(result.stdout, link_path))

    async def DeleteFile(self, request, context):
        who, system, path = self._target(request, context)
        await self._run(who, system, rm.argv(path))
        await send_http_code(context, 204)
        return utilities_pb2.DeleteFileResponse()

    async def DownloadFile(self, request, context):
        who, system, path = self._target(request, context)
        limit = system.max_ops_file_size
        result = await self._run(who, system, transfer.download_argv(path, limit), max_output=limit + 2)
        data = transfer.check_download(result.stdout, limit)
        await context.send_initial_metadata((("x-file-size", str(len(data))),))
        if not data:
            yield httpbody_pb2.HttpBody(content_type="application/octet-stream")
        for start in range(0, len(data), DOWNLOAD_CHUNK):
            yield httpbody_pb2.HttpBody(content_type="application/octet-stream",
                                        data=data[start:start + DOWNLOAD_CHUNK])

    async def UploadFile(self, request, context):
        who, system, directory = self._target(request, context)
        form = multipart.form_file(request.file.data, request.file.content_type)
        name = multipart.safe_filename(form.filename)
        data = transfer.check_upload(form.data, system.max_ops_file_size)
        target = paths.validate(system, directory.rstrip("/") + "/" + name)
        await self._run(who, system, transfer.upload_argv(target), stdin=data)
        await send_http_code(context, 204)
        return utilities_pb2.UploadFileResponse()

    async def CompressFiles(self, request, context):
        who, system, source = self._target(request, context, "path", "source_path")
        target = paths.validate(system, request.target_path, name="targetPath")
        argv = archive.compress_argv(source, target, request.match_pattern, request.dereference,
                                     request.compression)
        await self._run(who, system, argv)
        await send_http_code(context, 204)
        return utilities_pb2.CompressFilesResponse()

    async def ExtractArchive(self, request, context):
        who, system, source = self._target(request, context, "path", "source_path")
        target = paths.validate(system, request.target_path, name="targetPath")
        await self._run(who, system, archive.extract_argv(source, target, request.compression))
        await send_http_code(context, 204)
        return utilities_pb2.ExtractArchiveResponse()


def register(server, config: Config):
    pool = SshPool.for_service(config, "utilities")
    utilities_pb2_grpc.add_UtilitiesServiceServicer_to_server(UtilitiesService(config, pool), server)
    return (pool.close,)
