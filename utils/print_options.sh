# Sourced (by parse_options.sh for --help, and by recipes' run.sh): defines
#
#   print_usage FILE     FILE's header comment (from line 2 to the first line that is not a comment)
#   print_options FILE   every option FILE declares, one per line: "--foo-bar (default: X)  comment"
#
# An option is a column-0 assignment of a literal value ("foo_bar=1", foo_bar="a b") before the line
# that sources parse_options.sh (or a run.sh's own argument loop, "while [ $# -gt 0 ]"); its comment is
# the "# ..." after it plus any indented "# ..." lines right below. Arrays, values built from
# other variables ($...) and names starting with "_" are not options. The default shown is the variable's value in the calling
# shell when it has one (so "./run.sh --help" shows the values the recipe gives asr.sh), else the
# literal of the declaration.

print_usage() {
  sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$1"
}

print_options() {
  local file=$1 line name value shown comment in_opt=false
  local decl='^([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|'"'"'[^'"'"']*'"'"'|[^[:space:]#]*)[[:space:]]*(#[[:space:]]?(.*))?$'
  local cont='^[[:space:]]+#[[:space:]]?(.*)$'
  local stop='^([.]|source)[[:space:]].*parse_options[.]sh|^while \[ \$# -gt 0 \]'
  while IFS= read -r line || [ -n "${line}" ]; do
    [[ ${line} =~ ${stop} ]] && break
    if ${in_opt} && [[ ${line} =~ ${cont} ]]; then
      printf '  %-38s %s\n' "" "${BASH_REMATCH[1]}"
      continue
    fi
    in_opt=false
    [[ ${line} =~ ${decl} ]] || continue
    name=${BASH_REMATCH[1]}; value=${BASH_REMATCH[2]}; comment=${BASH_REMATCH[4]}
    case "${name}${value}" in _*|*\(*|*\$*) continue ;; esac
    if [ -n "${!name+set}" ]; then
      shown=${!name}
    else
      shown=${value#[\"\']}; shown=${shown%[\"\']}
    fi
    case "${shown}" in
      "") shown='""' ;;
      *[[:space:]]*) shown="\"${shown}\"" ;;
    esac
    printf '  %-38s %s\n' "--${name//_/-} (default: ${shown})" "${comment}"
    in_opt=true
  done < "${file}"
}

# recipe_help RUN_SH ASR_SH_COMMAND...: a recipe's --help: its run.sh's own options, then asr.sh's with the
# defaults the recipe passes (ASR_SH_COMMAND is the recipe's asr.sh call; --help is appended).
recipe_help() {
  local run_sh=$1; shift
  print_usage "${run_sh}"; echo; echo "Options of run.sh:"; print_options "${run_sh}"
  echo; echo "Options of asr.sh (defaults as this recipe sets them):"
  exec "$@" --help
}
