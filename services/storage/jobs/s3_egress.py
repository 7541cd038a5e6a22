"""The download job (the system → S3 staging; FirecREST v2's `job_s3_uploader_multipart.sh`, job
name "OutgressFileTransfer"): uploads the file in parts of `part_size` bytes to presigned part URLs,
each part read straight from the file (`dd` of a byte range piped to `curl -T -` with its length,
no temporary copy), keeps each part's ETag, completes the multipart upload with a presigned POST,
and prints "[INFO] Multipart file upload successfully completed".

Each part is tried up to 4 times (1, 2, 3 s apart), the completion up to 4 times, so a restart of
the S3 server during the job does not fail it. Exit 34: the file cannot be read; 27: it grew beyond
the parts prepared for it; 70: a part or the completion failed.
"""

from __future__ import annotations

from services.common.ssh.command import shell_join

SUCCESS = "[INFO] Multipart file upload successfully completed"

_BODY = r'''
if [ ! -f "$input" ] || [ ! -r "$input" ]; then echo "Unable to read the file $input" >&2; exit 34; fi
size=$(stat -L -c %s -- "$input") || exit 34
parts=$(( (size + part_size - 1) / part_size )); if [ "$parts" -lt 1 ]; then parts=1; fi
if [ "$parts" -gt "${#part_urls[@]}" ]; then
  echo "Unable to upload the file: it grew to $size bytes, more than the parts prepared" >&2; exit 27
fi
xml='<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
for ((i = 0; i < parts; i++)); do
  offset=$((i * part_size)); length=$((size - offset)); if [ "$length" -gt "$part_size" ]; then length=$part_size; fi
  for attempt in 1 2 3 4; do  # a part is read again from the file for each attempt
    etag=$(dd if="$input" bs=1M iflag=skip_bytes,count_bytes skip="$offset" count="$length" status=none |
           curl --fail --silent --show-error --dump-header - --output /dev/null --upload-file - \
                --header "Content-Length: $length" "${part_urls[$i]}" |
           tr -d '\r' | awk 'tolower($1) == "etag:" { print $2 }')
    if [ -n "$etag" ]; then break; fi
    sleep "$attempt"
  done
  if [ -z "$etag" ]; then echo "Unable to upload part $((i + 1)) of $parts" >&2; exit 70; fi
  xml+="<Part><PartNumber>$((i + 1))</PartNumber><ETag>$etag</ETag></Part>"
done
xml+='</CompleteMultipartUpload>'
answer=$(curl --fail --silent --show-error --retry 3 --retry-connrefused --retry-delay 1 -X POST --header 'Content-Type: application/xml' \
              --data-binary "$xml" "$complete_url") ||
  { rc=$?; echo "Unable to complete the upload, curl exit code:$rc" >&2; exit 70; }
case $answer in *"<Error>"*) echo "Unable to complete the upload: $answer" >&2; exit 70 ;; esac
echo "__SUCCESS__"
'''.replace("__SUCCESS__", SUCCESS)


def script(source: str, part_size: int, part_urls: list[str], complete_url: str) -> str:
    """The job's body: variables assigned from quoted values, then the fixed text above."""
    lines = [f"input={shell_join([source])}", f"part_size={int(part_size)}",
             f"complete_url={shell_join([complete_url])}", f"part_urls=({shell_join(part_urls)})"]
    return "\n".join(lines) + _BODY
