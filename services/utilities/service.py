"""gRPC servicer of firecrest_mesh.utilities.v1.UtilitiesService (FirecREST v2 `/filesystem/.../ops`).

Thin: each handler validates the request's paths (`services.common.paths`), builds its command with
the route's module in `commands/`, runs it as the caller through the `CommandRunner` (failures mapped
by `errors.error_for`, or the command's own `error_for`), and shapes the answer with the module's
`parse`.
"""

from __future__ import annotations

from firecrest_mesh.utilities.v1 import utilities_pb2, utilities_pb2_grpc
from google.api import httpbody_pb2
from services.common import paths
from services.common.config import Config, SystemConfig
from services.common.offload import parsed
from services.common.identity import Caller
from services.common.rpc import caller_and_system, created, no_content
from services.common.ssh.command import CommandResult
from services.common.ssh.pool import SshPool
from services.common.ssh.runner import CommandRunner, ErrorMapper, FailureTest, exited_non_zero
from services.utilities import errors, multipart
from services.utilities.commands import (checksum, chmod, chown, compress, download, extract, file, head_tail,
                                         ls, mkdir, rm, stat, symlink, upload, view)

DOWNLOAD_CHUNK = 1 << 20


def _optional(request, name: str) -> int | None:
    return getattr(request, name) if request.HasField(name) else None


class UtilitiesService(utilities_pb2_grpc.UtilitiesServiceServicer):
    def __init__(self, config: Config, runner: CommandRunner):
        self._config = config
        self._runner = runner

    def _target(self, request, *spellings: str) -> tuple[Caller, SystemConfig, str]:
        """The caller, the system and the validated path (first non-empty of `spellings`)."""
        who, system = caller_and_system(self._config, request.system_name)
        path = paths.first_path(*(getattr(request, s) for s in spellings or ("path",)))
        return who, system, paths.validate(system, path)

    async def _run(self, who: Caller, system: SystemConfig, *argvs: list[str],
                   error_for: ErrorMapper = errors.error_for, failed: FailureTest = exited_non_zero,
                   stdin: bytes | None = None, max_output: int | None = None, read: bool = False) -> CommandResult:
        """The result of `argvs` run as `who` under the system's command timeout; raises the mapped
        error when it failed. Output is capped at `max_output` (default `max_ops_file_size`; 413).
        `read`: the command only reads, so the pool may run it again (idempotent)."""
        return await self._runner.run(who, system, *argvs, timeout=system.ssh.timeouts.command_execution,
                                      error_for=error_for, failed=failed, stdin=stdin,
                                      max_output=max_output or system.max_ops_file_size, idempotent=read)

    async def ListFiles(self, request, context):
        who, system, path = self._target(request)
        result = await self._run(who, system, *ls.command(path, show_hidden=request.show_hidden,
                                                         recursive=request.recursive,
                                                         dereference=request.dereference),
                                failed=ls.failed(path), read=True)
        entries = await parsed(ls.parse, result.stdout, path, request.numeric_uid)  # large: off the loop
        return utilities_pb2.ListFilesResponse(output=entries)

    async def HeadFile(self, request, context):
        who, system, path = self._target(request)
        amount = (_optional(request, "num_bytes"), _optional(request, "num_lines"), request.skip_trailing)
        result = await self._run(who, system, head_tail.command("head", path, *amount), read=True)
        return utilities_pb2.HeadFileResponse(output=head_tail.parse("head", result.stdout, *amount))

    async def TailFile(self, request, context):
        who, system, path = self._target(request)
        amount = (_optional(request, "num_bytes"), _optional(request, "num_lines"), request.skip_heading)
        result = await self._run(who, system, head_tail.command("tail", path, *amount), read=True)
        return utilities_pb2.TailFileResponse(output=head_tail.parse("tail", result.stdout, *amount))

    async def ViewFile(self, request, context):
        who, system, path = self._target(request)
        limit = system.max_ops_file_size
        argv = view.command(path, _optional(request, "size"), _optional(request, "offset"), limit)
        # dd reads at most `limit` bytes: only more than that is too large.
        result = await self._run(who, system, argv, error_for=view.error_for, max_output=limit + 1, read=True)
        return utilities_pb2.ViewFileResponse(output=view.parse(result.stdout))

    async def ChecksumFile(self, request, context):
        who, system, path = self._target(request)
        result = await self._run(who, system, checksum.command(path), read=True)
        return utilities_pb2.ChecksumFileResponse(output=checksum.parse(result.stdout))

    async def GetFileType(self, request, context):
        who, system, path = self._target(request)
        result = await self._run(who, system, file.command(path), error_for=file.error_for, read=True)
        return utilities_pb2.GetFileTypeResponse(output=file.parse(result.stdout))

    async def StatFile(self, request, context):
        who, system, path = self._target(request)
        result = await self._run(who, system, stat.command(path, request.dereference), read=True)
        return utilities_pb2.StatFileResponse(output=stat.parse(result.stdout))

    async def ChangeMode(self, request, context):
        who, system, path = self._target(request, "path", "source_path")
        result = await self._run(who, system, *chmod.command(path, request.mode))
        return utilities_pb2.ChangeModeResponse(output=chmod.parse(result.stdout, path))

    async def ChangeOwnership(self, request, context):
        who, system, path = self._target(request, "path", "source_path")
        result = await self._run(who, system, *chown.command(path, request.owner, request.group))
        return utilities_pb2.ChangeOwnershipResponse(output=chown.parse(result.stdout, path))

    async def MakeDirectory(self, request, context):
        who, system, path = self._target(request, "path", "source_path")
        result = await self._run(who, system, *mkdir.command(path, request.parent))
        await created(context)
        return utilities_pb2.MakeDirectoryResponse(output=mkdir.parse(result.stdout, path))

    async def CreateSymlink(self, request, context):
        who, system, target = self._target(request, "path", "source_path")
        link_path = paths.validate(system, request.link_path, name="linkPath")
        result = await self._run(who, system, *symlink.command(target, link_path))
        await created(context)
        return utilities_pb2.CreateSymlinkResponse(output=symlink.parse(result.stdout, link_path))

    async def DeleteFile(self, request, context):
        who, system, path = self._target(request)
        await self._run(who, system, rm.command(path))
        await no_content(context)
        return utilities_pb2.DeleteFileResponse()

    async def DownloadFile(self, request, context):
        who, system, path = self._target(request)
        limit = system.max_ops_file_size
        # The command reads up to limit + 1 bytes; the cap lies above, so download.parse answers 413.
        result = await self._run(who, system, download.command(path, limit), max_output=limit + 2, read=True)
        data = download.parse(result.stdout, limit)
        await context.send_initial_metadata((("x-file-size", str(len(data))),))
        if not data:
            yield httpbody_pb2.HttpBody(content_type="application/octet-stream")
        for start in range(0, len(data), DOWNLOAD_CHUNK):
            yield httpbody_pb2.HttpBody(content_type="application/octet-stream",
                                        data=data[start:start + DOWNLOAD_CHUNK])

    async def UploadFile(self, request, context):
        who, system, directory = self._target(request)
        form = multipart.form_file(request.file.data, request.file.content_type)
        name = multipart.safe_filename(form.filename)
        target = paths.validate(system, directory.rstrip("/") + "/" + name)
        await self._run(who, system, upload.command(target, form.data, system.max_ops_file_size),
                        stdin=form.data)
        await no_content(context)
        return utilities_pb2.UploadFileResponse()

    async def CompressFiles(self, request, context):
        who, system, source = self._target(request, "path", "source_path")
        target = paths.validate(system, request.target_path, name="targetPath")
        await self._run(who, system, compress.command(source, target, request.match_pattern,
                                                      request.dereference, request.compression))
        await no_content(context)
        return utilities_pb2.CompressFilesResponse()

    async def ExtractArchive(self, request, context):
        who, system, source = self._target(request, "path", "source_path")
        target = paths.validate(system, request.target_path, name="targetPath")
        await self._run(who, system, extract.command(source, target, request.compression))
        await no_content(context)
        return utilities_pb2.ExtractArchiveResponse()


def register(server, config: Config):
    pool = SshPool.for_service(config, "utilities")
    utilities_pb2_grpc.add_UtilitiesServiceServicer_to_server(UtilitiesService(config, CommandRunner(pool)),
                                                              server)
    return (pool.close,)
