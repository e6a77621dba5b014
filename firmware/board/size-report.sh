#!/usr/bin/env bash
# Prints an image's sizes against the ESP8266 budget the link map enforces.
# Usage: size-report.sh SIZE_TOOL ELF
set -euo pipefail
size_tool=$1 elf=$2
"$size_tool" "$elf"
"$size_tool" -A "$elf" | awk -v elf="$elf" '
    $1 == ".iram" { iram = $2 } $1 == ".text" { irom = $2 }
    $1 == ".data" { data = $2 } $1 == ".bss" { bss = $2 }
    END {
        dram = data + bss
        printf "  %s: IRAM %d/32768  flash %d/983040  DRAM data+rodata %d + bss %d = %d/81920 (heap+stack %d)\n",
            elf, iram, irom, data, bss, dram, 81920 - dram
    }'
