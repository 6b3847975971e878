"""The requests benchmarks send, as wrk Lua scripts and as Python equivalents (bench.harness.Spec).

Claim texts are composed per request from the same Zipf-weighted pools as bench.corpus,
so every POST is a new claim that reads like the others (and near duplicates happen as
often as they would in a real feed).
"""

import json
import random
import urllib.parse

from bench import corpus
from bench.harness import Spec, lua_list, lua_string

_LUA_TEXT = r"""
local pools = {
%(pools)s
}
local cum = {}
for name, pool in pairs(pools) do
  local c, total = {}, 0
  for i = 1, #pool do total = total + 1 / i; c[i] = total end
  cum[name] = c
end
local function pick(name)
  local c = cum[name]
  local r = math.random() * c[#c]
  local lo, hi = 1, #c
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if c[mid] < r then lo = mid + 1 else hi = mid end
  end
  return pools[name][lo]
end
local syllables = %(syllables)s
local function name(tail)
  local parts = {}
  for i = 1, math.random(2, 3) do parts[i] = syllables[math.random(#syllables)] end
  local word = table.concat(parts)
  return word:sub(1, 1):upper() .. word:sub(2) .. tail
end
local forces = {"Russian forces", "Ukrainian forces", "Belarusian troops", "Wagner fighters"}
local function number()
  local n = math.floor(3 * (1 - math.random()) ^ (-1 / 0.8))
  if math.random() < 0.7 and n >= 1000 then
    local s = tostring(n):reverse():gsub("(%%d%%d%%d)", "%%1,"):reverse()
    return (s:gsub("^,", ""))
  end
  return tostring(n)
end
local function claim_text()
  local t = pick("template")
  t = t:gsub("{(%%w+)}", function(slot)
    if slot == "n" then return number() end
    if slot == "person" then return name("enko") end
    if slot == "village" then return name("ivka") end
    if slot == "force" then return forces[math.random(#forces)] end
    return pick(slot)
  end)
  if math.random() < 0.6 then t = t:sub(1, -2) .. ", " .. pick("detail") .. "." end
  return (t:sub(1, 1):upper() .. t:sub(2)):gsub('"', "'")
end
"""


def lua_text_functions() -> str:
    pools = {"template": corpus.TEMPLATES, "actor": corpus.ACTORS, "people": corpus.PEOPLE,
             "harmed": corpus.HARMED, "units": corpus.UNITS, "moved": corpus.MOVED,
             "weapons": corpus.WEAPONS, "hit": corpus.HIT, "goods": corpus.GOODS,
             "place": corpus.PLACES, "when": corpus.WHEN, "country": corpus.COUNTRIES,
             "plans": corpus.PLANS, "action": corpus.ACTIONS, "role": corpus.ROLES,
             "detail": corpus.DETAILS}
    body = ",\n".join(f"  {k} = {lua_list(list(v))}" for k, v in pools.items())
    return _LUA_TEXT % {"pools": body, "syllables": lua_list(corpus._SYLLABLES)}


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def healthz() -> Spec:
    return Spec(name="healthz", path="/healthz")


def post_claim(key: str, source_id: str, *, name: str = "post-claim") -> Spec:
    """POST /v1/claims: a new claim with one attribution to an existing source, by id."""
    lua = lua_text_functions() + f"""
math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1000000))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = {lua_string("Bearer " + key)}
local source_id = {lua_string(source_id)}
request = function()
  local body = '{{"text":"' .. claim_text() .. '","attributions":[{{"source_id":"' ..
    source_id .. '","stance":"asserts"}}]}}'
  return wrk.format("POST", "/v1/claims", nil, body)
end
"""
    gen = corpus.Corpus(seed=random.randrange(1 << 30), names=2000, villages=2000)

    def make() -> tuple[str, str, bytes]:
        body = {"text": gen.text(),
                "attributions": [{"source_id": source_id, "stance": "asserts"}]}
        return "POST", "/v1/claims", json.dumps(body).encode()

    return Spec(name=name, path="/v1/claims", lua=lua, headers=_auth(key), make=make)


def get_claims(key: str, claim_ids: list[str], *, name: str = "get-claim") -> Spec:
    """GET /v1/claims/{claim_id} for random existing claims."""
    lua = f"""
math.randomseed(os.time())
local ids = {lua_list(claim_ids)}
request = function()
  return wrk.format("GET", "/v1/claims/" .. ids[math.random(#ids)])
end
"""

    def make() -> tuple[str, str, None]:
        return "GET", f"/v1/claims/{random.choice(claim_ids)}", None

    return Spec(name=name, path="/v1/claims/" + claim_ids[0], lua=lua, headers=_auth(key),
                make=make)


def mixed(key: str, claim_ids: list[str], queries: list[str], source_id: str) -> Spec:
    """A dashboard-and-feed mix: 45% read a claim, 30% search, 15% list, 10% register."""
    paths = [f"/v1/claims?limit=20&q={urllib.parse.quote(q)}" for q in queries]
    lua = lua_text_functions() + f"""
math.randomseed(os.time())
local ids = {lua_list(claim_ids)}
local searches = {lua_list(paths)}
local source_id = {lua_string(source_id)}
local json = {{["Content-Type"] = "application/json",
              ["Authorization"] = {lua_string("Bearer " + key)}}}
request = function()
  local r = math.random()
  if r < 0.45 then
    return wrk.format("GET", "/v1/claims/" .. ids[math.random(#ids)])
  elseif r < 0.75 then
    return wrk.format("GET", searches[math.random(#searches)])
  elseif r < 0.90 then
    return wrk.format("GET", "/v1/claims?limit=50")
  end
  local body = '{{"text":"' .. claim_text() .. '","attributions":[{{"source_id":"' ..
    source_id .. '","stance":"reports"}}]}}'
  return wrk.format("POST", "/v1/claims", json, body)
end
"""
    gen = corpus.Corpus(seed=random.randrange(1 << 30), names=2000, villages=2000)

    def make() -> tuple[str, str, bytes | None]:
        r = random.random()
        if r < 0.45:
            return "GET", f"/v1/claims/{random.choice(claim_ids)}", None
        if r < 0.75:
            return "GET", random.choice(paths), None
        if r < 0.90:
            return "GET", "/v1/claims?limit=50", None
        body = {"text": gen.text(),
                "attributions": [{"source_id": source_id, "stance": "reports"}]}
        return "POST", "/v1/claims", json.dumps(body).encode()

    return Spec(name="mixed", path="/v1/claims", lua=lua, headers=_auth(key), make=make)
