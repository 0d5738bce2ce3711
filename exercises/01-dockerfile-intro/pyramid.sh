#!/bin/bash
# Draws a pyramid of stars. The height is the first argument of makePyramid.

makePyramid() {
  local height=$1
  local row star

  for ((row = 1; row <= height; row++)); do
    printf '%*s' $((height - row)) ''
    for ((star = 1; star <= row; star++)); do
      printf '* '
    done
    printf '\n'
  done
}

makePyramid 5
