// A plain C loop over CSupport/CSluice/crc32c.c: GB/s of both CRC-32C paths at 1 KiB, 16 KiB
// and 1 MiB, as a cross-check of the package-benchmark figures.
// cc -O2 -ICSupport/CSluice/include Benchmarks/scripts/crc32c-loop.c CSupport/CSluice/crc32c.c -lpthread -o /tmp/crc32c-loop && /tmp/crc32c-loop
#include "csluice.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(void){
  size_t sizes[]={1024,16384,1<<20};
  unsigned char*buf=malloc(1<<20); for(int i=0;i<1<<20;i++)buf[i]=i*31;
  for(int s=0;s<3;s++){ size_t n=sizes[s]; size_t total=(size_t)4<<30; size_t iters=total/n;
    double t=now(); unsigned c=0; for(size_t i=0;i<iters;i++) c^=sluice_crc32c_hardware(0,buf,n); double hw=total/(now()-t)/1e9;
    size_t it2=iters/8; t=now(); for(size_t i=0;i<it2;i++) c^=sluice_crc32c_software(0,buf,n); double sw=(double)it2*n/(now()-t)/1e9;
    printf("%7zu bytes: hardware %.2f GB/s, software %.2f GB/s (%u)\n", n, hw, sw, c&1);}
}
