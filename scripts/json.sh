# shellcheck shell=bash
# JSON for the GPU machine's bash scripts (sourced by gpu-env.sh and gpu-check.sh), which has no jq: quoting
# values, and reading a field of the indented JSON that `resnet ... --json` and bench_pytorch.py --json print.

# json_str S: S as a JSON string. Control characters other than newline and tab are dropped.
json_str() {
	local s
	s=$(printf '%s' "$1" | LC_ALL=C tr -d '\000-\010\013-\037')
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\n'/\\n}
	s=${s//$'\t'/\\t}
	printf '"%s"' "$s"
}

# json_strs S...: a JSON array of the strings S.
json_strs() {
	local s sep=
	printf '['
	for s in "$@"; do
		printf '%s%s' "$sep" "$(json_str "$s")"
		sep=', '
	done
	printf ']'
}

# json_num S: S when it is a JSON number, else null.
json_num() {
	if [[ $1 =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]; then printf '%s' "$1"; else printf 'null'; fi
}

# json_get FILE KEY: the value of the first "KEY": line of an indented JSON file (one key per line), without
# quotes or trailing comma; nothing when there is none. Strings holding quotes are not supported.
json_get() {
	[[ -f $1 ]] || return 0
	awk -v key="\"$2\":" '$1 == key { sub(/^[^:]*: */, ""); sub(/,? *$/, ""); gsub(/^"|"$/, ""); print; exit }' "$1"
}
