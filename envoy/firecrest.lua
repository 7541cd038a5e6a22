-- The gateway's request and response shaping: the first HTTP filter of the listener (see
-- envoy/render.py), so it sees a request before anything else and a response after everything else.
--
-- Request:  drop client-sent identity headers (only jwt_authn may set them); mark native gRPC
--           requests for local_reply_config; record method and path for the access log (the
--           transcoder rewrites both).
-- Response, REST only (native gRPC, content-type application/grpc*, passes untouched):
--           F7T-AppVersion and F7T-Timestamp on every response, Envoy's own replies included;
--           x-http-code from the service (initial metadata, or trailing metadata of a trailers-only
--           error) becomes the HTTP status; 204 has no body; the transcoder's error JSON
--           {"code":N,"message":"..."} becomes the FirecREST error object; F7T-AuthUsername on
--           errors after authentication.
--
-- Envoy's Lua has no JSON library: we never decode strings, we copy the transcoder's JSON string
-- literal as is (it is valid JSON) and escape our own strings with json_string().

local USERNAME_CLAIM = "preferred_username" -- render.py substitutes identity.username_claim
local APP_VERSION = "2.x.x"                 -- literal, as FirecREST v2 sends it; pyfirecrest reads it
local LUA_NS = "envoy.filters.http.lua"     -- our dynamic metadata (local_reply_config, access log)
local JWT_NS = "envoy.filters.http.jwt_authn"

-- Headers that carry identity or gateway decisions: a client must never be able to send them.
local RESERVED_PREFIXES = { "x-firecrest-", "x-jwt-", "x-auth-request-" }
local RESERVED_NAMES = { ["x-http-code"] = true, ["x-remote-user"] = true, ["x-forwarded-user"] = true,
                         ["x-user"] = true, ["remote-user"] = true }

local function is_reserved(name)
  if RESERVED_NAMES[name] then return true end
  for _, prefix in ipairs(RESERVED_PREFIXES) do
    if name:sub(1, #prefix) == prefix then return true end
  end
  return false
end

-- Response headers of the gRPC exchange that mean nothing to a REST client.
local GRPC_LEFTOVERS = { "grpc-status", "grpc-message", "grpc-accept-encoding", "grpc-encoding" }

local function is_grpc(content_type)
  return content_type ~= nil and content_type:sub(1, 16) == "application/grpc"
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local reserved = {}
  for name, _ in pairs(headers) do
    if is_reserved(name) then reserved[#reserved + 1] = name end
  end
  for _, name in ipairs(reserved) do headers:remove(name) end

  local meta = handle:streamInfo():dynamicMetadata()
  meta:set(LUA_NS, "method", headers:get(":method") or "")
  meta:set(LUA_NS, "path", (headers:get(":path") or ""):match("^[^?]*")) -- no query: it may hold a token
  if is_grpc(headers:get("content-type")) then meta:set(LUA_NS, "grpc", true) end
  -- No rewrite of `/status/liveness/`: the transcoder matches it to the `/status/liveness` binding.
end

-- `s` as a JSON string literal. Escapes quote, backslash and control characters; UTF-8 passes as is.
local JSON_ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
                       ["\b"] = "\\b", ["\f"] = "\\f" }
local function json_string(s)
  local escaped = s:gsub('[%c"\\]', function(c)
    return JSON_ESCAPES[c] or string.format("\\u%04x", c:byte())
  end)
  return '"' .. escaped .. '"'
end

-- Index of the closing quote of the JSON string literal that opens at s[i], or nil.
local function string_end(s, i)
  local j = i + 1
  while true do
    local k = s:find('["\\]', j)
    if not k then return nil end
    if s:byte(k) == 34 then return k end -- '"'
    j = k + 2                            -- a backslash escapes the next character (\uXXXX is harmless)
  end
end

-- Index just after the JSON value that starts at s[i], or nil.
local function value_end(s, i)
  local c = s:sub(i, i)
  if c == '"' then
    local e = string_end(s, i)
    return e and e + 1
  end
  if c == "{" or c == "[" then
    local depth, j = 0, i
    while true do
      local k = s:find('[%[%]{}"]', j)
      if not k then return nil end
      local ch = s:sub(k, k)
      if ch == '"' then
        local e = string_end(s, k)
        if not e then return nil end
        j = e + 1
      else
        depth = depth + ((ch == "{" or ch == "[") and 1 or -1)
        j = k + 1
        if depth == 0 then return j end
      end
    end
  end
  local _, e = s:find("^[%w%.%+%-]+", i) -- number, true, false, null
  return e and e + 1
end

-- The top-level members of a JSON object: key → raw JSON value text. nil if `s` is not an object.
local function object_members(s)
  local members = {}
  local i = s:find("%S")
  if not i or s:byte(i) ~= 123 then return nil end -- '{'
  i = s:find("%S", i + 1)
  if i and s:byte(i) == 125 then return members end -- '}'
  while i and s:byte(i) == 34 do
    local key_end = string_end(s, i)
    if not key_end then return nil end
    local key = s:sub(i + 1, key_end - 1)
    i = s:find("%S", key_end + 1)
    if not i or s:byte(i) ~= 58 then return nil end -- ':'
    i = s:find("%S", i + 1)
    local after = i and value_end(s, i)
    if not after then return nil end
    members[key] = s:sub(i, after - 1)
    i = s:find("%S", after)
    if i and s:byte(i) == 125 then return members end -- '}'
    if not i or s:byte(i) ~= 44 then return nil end   -- ','
    i = s:find("%S", i + 1)
  end
  return nil
end

-- The authenticated username (jwt_authn's payload_in_metadata), or nil before authentication.
local function username(handle)
  local jwt = handle:streamInfo():dynamicMetadata():get(JWT_NS)
  local user = jwt and jwt.jwt_payload and jwt.jwt_payload[USERNAME_CLAIM]
  if type(user) == "string" and user ~= "" then return user end
  return nil
end

-- Seconds since the epoch with microseconds, like Python's time.time().
local function timestamp(handle)
  local us = handle:timestampString(EnvoyTimestampResolution.MICROSECOND)
  return us:sub(1, -7) .. "." .. us:sub(-6)
end

function envoy_on_response(handle)
  local headers = handle:headers()
  local content_type = headers:get("content-type")
  if is_grpc(content_type) then return end

  headers:replace("f7t-appversion", APP_VERSION)
  headers:replace("f7t-timestamp", timestamp(handle))
  for _, name in ipairs(GRPC_LEFTOVERS) do headers:remove(name) end

  -- The service's choice of HTTP status. A success code only replaces 200 (a service that sent
  -- 201 and then failed keeps the error status); an error code replaces anything.
  local status = tonumber(headers:get(":status")) or 0
  local wanted = tonumber(headers:get("x-http-code") or "")
  headers:remove("x-http-code")
  if wanted and wanted == math.floor(wanted) and wanted >= 200 and wanted <= 599
      and (wanted >= 400 or status == 200) then
    status = wanted
    headers:replace(":status", tostring(status))
  end

  if status == 204 then
    -- No body: the transcoder printed `{}` for google.protobuf.Empty (or the message's defaults).
    local body = handle:body()
    if body and body:length() > 0 then body:setBytes("") end
    headers = handle:headers() -- re-fetch after body()
    headers:remove("content-length")
    headers:remove("content-type")
    local trailers = handle:trailers() -- on HTTP/2 the transcoder passes grpc-status on as trailers here
    if trailers then
      for _, name in ipairs(GRPC_LEFTOVERS) do trailers:remove(name) end
    end
    return
  end
  if status < 400 then return end

  local user = username(handle)
  if user and not user:find("%c") then headers:replace("f7t-authusername", user) end
  if not (content_type and content_type:sub(1, 16) == "application/json") then return end

  -- The transcoder's rendering of a gRPC error ({"code":N,"message":"...","details":[]}). Envoy's
  -- own replies already carry the FirecREST object (local_reply_config) and stay as they are.
  local body = handle:body()
  if not body or body:length() == 0 then return end
  local members = object_members(body:getBytes(0, body:length()))
  if not members or not members.code or members.errorType then return end
  local message = members.message
  if not message or message:byte(1) ~= 34 then message = json_string("gRPC status " .. members.code) end
  if status == 429 and not wanted and members.code == "8" then
    -- RESOURCE_EXHAUSTED without a service's x-http-code is gRPC refusing an oversized message.
    -- As 429 it would make pyfirecrest retry forever; it is a 413.
    handle:headers():replace(":status", "413")
    message = json_string("Request body is too large")
  end
  body:setBytes('{"errorType":"error","message":' .. message .. ',"causedBy":null,"data":null,"user":'
                .. (user and json_string(user) or "null") .. "}")
end
