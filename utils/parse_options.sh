#!/usr/bin/env bash
# Kaldi/ESPnet-style option parsing, sourced by recipe scripts after they declare their options:
#
#   stage=1; stop_stage=100; aux=none
#   . utils/parse_options.sh
#
# "--stop-stage 5" sets stop_stage=5; "--aux=mtl" works too. An option whose variable was not declared
# is an error, so a typo never silently does nothing. "--help"/"-h" prints the script's header comment
# and every declared option with its default and comment (utils/print_options.sh). A positional
# argument is an error too: these scripts take options only.

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      . "$(dirname "${BASH_SOURCE[0]}")/print_options.sh"
      print_usage "$0"
      print_options "$0"
      exit 0 ;;
    --*=*)
      __po_name=$(echo "${1%%=*}" | sed 's/^--//; s/-/_/g')
      __po_value="${1#*=}"
      shift ;;
    --*)
      __po_name=$(echo "$1" | sed 's/^--//; s/-/_/g')
      if [ $# -lt 2 ]; then
        echo "$0: option '$1' needs a value" >&2
        exit 1
      fi
      __po_value="$2"
      shift 2 ;;
    *)
      echo "$0: unexpected argument '$1': this script takes options only (--name value; see $0 --help)" >&2
      exit 1 ;;
  esac
  if ! [[ "$__po_name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
    echo "$0: invalid option name '--$__po_name'" >&2
    exit 1
  fi
  if [ -z "${!__po_name+set}" ]; then
    echo "$0: unknown option '--${__po_name//_/-}' (declared options are set before parse_options.sh)" >&2
    exit 1
  fi
  # Booleans declared as true/false accept only those values, as in Kaldi.
  __po_old="${!__po_name}"
  if [ "$__po_old" = true ] || [ "$__po_old" = false ]; then
    if [ "$__po_value" != true ] && [ "$__po_value" != false ]; then
      echo "$0: option '--${__po_name//_/-}' takes true or false, got '$__po_value'" >&2
      exit 1
    fi
  fi
  printf -v "$__po_name" '%s' "$__po_value"
done
unset __po_name __po_value __po_old
true
